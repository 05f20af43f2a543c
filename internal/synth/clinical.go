package synth

import (
	"slices"
	"time"
)

type encClass int

const (
	amb encClass = iota
	emer
	imp
)

var classCodes = [...][2]string{amb: {"AMB", "ambulatory"}, emer: {"EMER", "emergency"}, imp: {"IMP", "inpatient encounter"}}

type encKind int

const (
	checkup encKind = iota
	followup
	symptom
	emergency
	admission
)

var kindClass = [...]encClass{checkup: amb, followup: amb, symptom: amb, emergency: emer, admission: imp}

// kindTypes are the SNOMED CT encounter types; checkups of children are well child visits.
var kindTypes = [...][2]string{
	checkup: {"185349003", "Encounter for check up"}, followup: {"390906007", "Follow-up encounter"},
	symptom: {"185345009", "Encounter for symptom"}, emergency: {"50849002", "Emergency room admission"},
	admission: {"32485007", "Hospital admission"},
}

// condState is a chronic condition of the patient; id is set once an encounter records it.
type condState struct {
	def     *chronic
	onset   time.Time
	id      string
	nextMed int
}

// encounter is one visit as planned, before it is rendered.
type encounter struct {
	id         string
	kind       encKind
	start, end time.Time
	inProgress bool
	expired    bool // the patient died during it
	prac       practitioner
	acute      *acute
	acuteID    string
	follow     *condState
}

func (e *encounter) ref() obj { return ref("urn:uuid:"+e.id, "") }

// has reports whether the patient has chronic condition def at t (diagnosed or not).
func (p *patient) has(def *chronic, t time.Time) bool {
	for _, c := range p.chronic {
		if c.def == def && !c.onset.After(t) {
			return true
		}
	}
	return false
}

// clinical generates the patient's history: 5 to 15 encounters over at most ten years, with
// their conditions, observations and medication requests, then the care team.
func (p *patient) clinical() {
	g := p.g
	p.physiology()
	p.drawChronic()

	winStart := later(p.birth, p.end.AddDate(-10, 0, 0))
	n := g.rangeInt(5, 15)
	var final *encounter
	lastEnd := p.end
	if !p.death.IsZero() {
		start := later(winStart, p.death.Add(-time.Duration(g.rangeInt(24, 144))*time.Hour))
		final = &encounter{kind: admission, start: start, end: p.death, expired: true}
		lastEnd, n = start, n-1
	}
	starts := make([]time.Time, n)
	for i := range starts {
		starts[i] = g.between(winStart, lastEnd.Add(-2*time.Hour))
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })

	var encs []*encounter
	for i, t := range starts {
		e := &encounter{start: t}
		e.kind = p.pickKind(i)
		p.schedule(e, lastEnd)
		encs = append(encs, e)
		p.visit(e)
	}
	if final != nil {
		encs = append(encs, final)
		p.visit(final)
	}
	p.careTeam(encs[0].start)
}

func (p *patient) pickKind(i int) encKind {
	if i == 0 {
		return checkup
	}
	weights := []int{checkup: 38, followup: 0, symptom: 22, emergency: 9, admission: 4}
	for _, c := range p.chronic {
		if c.id != "" {
			weights[followup] = 27
		}
	}
	return encKind(weighted(p.g, weights))
}

// schedule fixes the encounter's practitioner and period; nothing ends after limit.
func (p *patient) schedule(e *encounter, limit time.Time) {
	g := p.g
	switch kindClass[e.kind] {
	case amb:
		day := e.start.Truncate(24 * time.Hour)
		if s := day.Add(13*time.Hour + time.Duration(g.intn(17))*30*time.Minute); s.Before(limit.Add(-time.Hour)) {
			e.start = s // office hours in Ohio, 8:00 to 16:00 EST
		}
		e.end = e.start.Add(time.Duration(g.rangeInt(15, 45)) * time.Minute)
	case emer:
		e.end = e.start.Add(time.Duration(g.rangeInt(120, 480)) * time.Minute)
	case imp:
		e.end = e.start.Add(time.Duration(g.rangeInt(48, 168)) * time.Hour)
	}
	if e.end.After(p.end) {
		e.end = p.end
	}
	if !e.end.Before(p.opt.Reference) && p.death.IsZero() {
		e.inProgress = true
	}
}

// visit renders one encounter with everything recorded during it.
func (p *patient) visit(e *encounter) {
	g := p.g
	age := p.ageAt(e.start)
	e.id = g.uuid()
	switch e.kind {
	case checkup, symptom:
		e.prac = p.pcp
	case followup:
		var known []*condState
		for _, c := range p.chronic {
			if c.id != "" {
				known = append(known, c)
			}
		}
		e.follow = pick(g, known)
		e.prac = p.pcp
		if s := e.follow.def.specialist; s != noSpecialty && g.chance(0.4) {
			e.prac = p.ro.any(g, s)
		}
	case emergency:
		e.prac = p.ro.any(g, emergencyMedicine)
	case admission:
		e.prac = p.ro.any(g, internalMedicine)
	}
	if e.kind == symptom || e.kind == emergency || e.kind == admission {
		e.acute = p.pickAcute(kindClass[e.kind], age, e.start.Year())
		e.acuteID = g.uuid()
	}
	var diagnosed []*condState
	if e.kind != emergency {
		for _, c := range p.chronic {
			if c.id == "" && !c.onset.After(e.start) {
				c.id = g.uuid()
				diagnosed = append(diagnosed, c)
			}
		}
	}

	p.addAs(e.id, p.encounterResource(e))
	if e.acute != nil {
		p.acuteCondition(e)
	}
	for _, c := range diagnosed {
		p.chronicCondition(e, c)
		if len(c.def.meds) > 0 {
			p.prescribe(e, c.def.meds[0], c.id, true)
			c.nextMed = 1
		}
	}
	if c := e.follow; c != nil && c.nextMed < len(c.def.meds) && g.chance(0.4) {
		p.prescribe(e, c.def.meds[c.nextMed], c.id, true)
		c.nextMed++
	}
	p.observations(e)
}

func (p *patient) pickAcute(class encClass, age, year int) *acute {
	var fit []*acute
	for _, want := range []encClass{class, amb} {
		for i := range acutes {
			a := &acutes[i]
			if a.class == want && age >= a.minAge && age <= a.maxAge && year >= a.sinceYear {
				fit = append(fit, a)
			}
		}
		if len(fit) > 0 {
			break
		}
	}
	return pick(p.g, fit)
}

func (p *patient) encounterResource(e *encounter) obj {
	class := classCodes[kindClass[e.kind]]
	typ := kindTypes[e.kind]
	if e.kind == checkup && p.ageAt(e.start) < 18 {
		typ = [2]string{"410620009", "Well child visit"}
	}
	period := obj{"start": dateTime(e.start)}
	status, locStatus := "finished", "completed"
	if e.inProgress {
		status, locStatus = "in-progress", "active"
	} else {
		period["end"] = dateTime(e.end)
	}
	org, loc := specialties[e.prac.spec].org, specialties[e.prac.spec].loc
	switch kindClass[e.kind] {
	case emer:
		org, loc = orgHospital, locED
	case imp:
		org, loc = orgHospital, locInpatient
	}
	r := obj{
		"resourceType": "Encounter", "status": status,
		"class":   coding(actCode, class[0], class[1]),
		"type":    arr{concept(snomed, typ[0], typ[1])},
		"subject": p.subject(),
		"participant": arr{obj{
			"type":       arr{concept(participationType, "ATND", "attender")},
			"period":     period,
			"individual": e.prac.ref(),
		}},
		"period":          period,
		"location":        arr{obj{"location": ref("Location/"+loc, ""), "status": locStatus}},
		"serviceProvider": ref("Organization/"+org, orgName(org)),
	}
	switch {
	case e.acute != nil:
		r["reasonReference"] = arr{ref("urn:uuid:"+e.acuteID, "")}
	case e.follow != nil:
		r["reasonReference"] = arr{ref("urn:uuid:"+e.follow.id, "")}
	}
	if kindClass[e.kind] == imp && !e.inProgress {
		disp := concept(dischargeDisp, "home", "Home")
		if e.expired {
			disp = concept(dischargeDisp, "exp", "Expired")
		}
		r["hospitalization"] = obj{"dischargeDisposition": disp}
	}
	return r
}

func (p *patient) condition(e *encounter, code, display, category, categoryDisplay string, onset time.Time) obj {
	return obj{
		"resourceType":       "Condition",
		"clinicalStatus":     concept(condClinical, "active", "Active"),
		"verificationStatus": concept(condVerification, "confirmed", "Confirmed"),
		"category":           arr{concept(condCategory, category, categoryDisplay)},
		"code":               concept(snomed, code, display),
		"subject":            p.subject(),
		"encounter":          e.ref(),
		"onsetDateTime":      dateTime(onset),
		"recordedDate":       dateTime(e.start),
		"recorder":           e.prac.ref(),
	}
}

func (p *patient) chronicCondition(e *encounter, c *condState) {
	p.addAs(c.id, p.condition(e, c.def.code, c.def.display, "problem-list-item", "Problem List Item", c.onset))
}

func (p *patient) acuteCondition(e *encounter) {
	g, a := p.g, e.acute
	onset := later(p.birth, e.start.Add(-time.Duration(g.rangeInt(6, 120))*time.Hour))
	r := p.condition(e, a.code, a.display, "encounter-diagnosis", "Encounter Diagnosis", onset)
	if abated := onset.AddDate(0, 0, g.rangeInt(a.minDays, a.maxDays)); !abated.After(p.end) {
		r["clinicalStatus"] = concept(condClinical, "resolved", "Resolved")
		r["abatementDateTime"] = dateTime(abated)
	}
	p.addAs(e.acuteID, r)
	for i, m := range a.meds {
		if i == 0 && g.chance(0.7) || i > 0 && g.chance(0.5) {
			p.prescribe(e, m, e.acuteID, false)
		}
	}
}

// prescribe adds a MedicationRequest for m, authored at the encounter, for condition reason.
func (p *patient) prescribe(e *encounter, m med, reason string, longTerm bool) {
	route := concept(snomed, "26643006", "Oral route")
	if m.form == "puff" {
		route = concept(snomed, "447694001", "Respiratory tract route")
	}
	status := "active"
	switch {
	case !p.death.IsZero():
		status = "stopped"
	case !longTerm && e.start.AddDate(0, 0, 30).Before(p.opt.Reference):
		status = "completed"
	}
	r := obj{
		"resourceType": "MedicationRequest", "status": status, "intent": "order",
		"medicationCodeableConcept": concept(rxnorm, m.code, m.display),
		"subject":                   p.subject(),
		"encounter":                 e.ref(),
		"authoredOn":                dateTime(e.start),
		"requester":                 e.prac.ref(),
		"reasonReference":           arr{ref("urn:uuid:"+reason, "")},
		"dosageInstruction": arr{obj{
			"sequence": 1, "text": m.instruction, "asNeededBoolean": m.asNeeded, "route": route,
			"timing":      obj{"repeat": obj{"frequency": m.perDay, "period": 1, "periodUnit": "d"}},
			"doseAndRate": arr{obj{"doseQuantity": obj{"value": m.dose, "unit": m.form, "system": ucum, "code": "{" + m.form + "}"}}},
		}},
	}
	if longTerm {
		r["dispenseRequest"] = obj{
			"numberOfRepeatsAllowed": 3,
			"quantity":               obj{"value": 30 * m.dose * m.perDay, "unit": m.form, "system": ucum, "code": "{" + m.form + "}"},
			"expectedSupplyDuration": obj{"value": 30, "unit": "days", "system": ucum, "code": "d"},
		}
	}
	p.add(r)
}

// careTeam adds the patient's one CareTeam: primary care physician, nurse, the specialists of
// the diagnosed chronic conditions, and the patient.
func (p *patient) careTeam(since time.Time) {
	member := func(pr practitioner, code, display string) obj {
		org := specialties[pr.spec].org
		return obj{"role": arr{concept(snomed, code, display)}, "member": pr.ref(), "onBehalfOf": ref("Organization/"+org, orgName(org))}
	}
	parts := arr{member(p.pcp, "446050000", "Primary care physician"), member(p.nurse, "224535009", "Registered nurse")}
	var reasons, reasonRefs arr
	var seen []specialty
	for _, c := range p.chronic {
		if c.id == "" {
			continue
		}
		reasons = append(reasons, concept(snomed, c.def.code, c.def.display))
		reasonRefs = append(reasonRefs, ref("urn:uuid:"+c.id, ""))
		if s := c.def.specialist; s != noSpecialty && !slices.Contains(seen, s) {
			seen = append(seen, s)
			parts = append(parts, member(p.ro.any(p.g, s), "309343006", "Physician"))
		}
	}
	parts = append(parts, obj{"role": arr{concept(snomed, "116154003", "Patient")}, "member": p.subject()})
	status, period := "active", obj{"start": dateTime(since)}
	if !p.death.IsZero() {
		status, period["end"] = "inactive", dateTime(p.death)
	}
	r := obj{
		"resourceType": "CareTeam", "status": status, "name": "Primary care team",
		"category":             arr{concept(loinc, "LA28865-6", "Longitudinal care-coordination focused care team")},
		"subject":              p.subject(),
		"period":               period,
		"participant":          parts,
		"managingOrganization": arr{ref("Organization/"+specialties[p.pcp.spec].org, orgName(specialties[p.pcp.spec].org))},
	}
	if len(reasons) > 0 {
		r["reasonCode"], r["reasonReference"] = reasons, reasonRefs
	}
	p.add(r)
}
