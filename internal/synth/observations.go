package synth

import (
	"math"
	"time"
)

// physiology fixes the patient's adult height and BMI, blood pressure baseline and smoking.
func (p *patient) physiology() {
	g := p.g
	switch p.gender {
	case "male":
		p.adultHeight = g.norm(176, 7)
	case "female":
		p.adultHeight = g.norm(163, 6.5)
	default:
		p.adultHeight = g.norm(170, 8)
	}
	p.adultBMI = math.Min(math.Max(g.norm(27.5, 5), 17.5), 48)
	p.sysBase, p.diaBase = g.norm(112, 6), g.norm(72, 5)
	p.smoking = weighted(g, []int{65, 20, 15})
}

// drawChronic decides which chronic conditions the patient has and when each began.
func (p *patient) drawChronic() {
	g := p.g
	age := p.ageAt(p.end)
	obese := p.adultBMI >= 30
	for _, def := range chronics {
		prob := 0.0
		for _, b := range def.bands {
			if age >= b.minAge {
				prob = b.p
			}
		}
		if p.gender == "female" {
			prob *= def.femaleFactor
		}
		if obese && (def == diabetes2 || def == hypertension) {
			prob *= 1.8
		}
		if !g.chance(prob) {
			continue
		}
		from := later(p.birth.AddDate(def.bands[0].minAge, 0, 0), p.end.AddDate(-15, 0, 0))
		p.chronic = append(p.chronic, &condState{def: def, onset: g.between(from, p.end)})
	}
	if obese && age >= 18 {
		from := later(p.birth.AddDate(18, 0, 0), p.end.AddDate(-12, 0, 0))
		p.chronic = append(p.chronic, &condState{def: obesity, onset: g.between(from, p.end)})
	}
}

// growth is the fraction of adult height reached at each age 0 to 18.
var growth = []float64{0.29, 0.43, 0.50, 0.55, 0.59, 0.63, 0.67, 0.70, 0.73, 0.76, 0.79, 0.82, 0.85, 0.89, 0.93, 0.96, 0.98, 0.99, 1}

// childBMI is a typical BMI at ages 0, 1, 2, 5, 8, 12, 15 and 18 (the last replaced by the
// patient's adult BMI).
var childBMI = [][2]float64{{0, 13.5}, {1, 17.5}, {2, 16.5}, {5, 15.5}, {8, 16.5}, {12, 19}, {15, 21}, {18, 0}}

func (p *patient) heightAt(a float64) float64 {
	if a >= 18 {
		return p.adultHeight - math.Max(a-70, 0)*0.15
	}
	i := int(a)
	return p.adultHeight * (growth[i] + (growth[i+1]-growth[i])*(a-float64(i)))
}

func (p *patient) bmiAt(a float64) float64 {
	if a >= 18 {
		return p.adultBMI
	}
	for i := 1; i < len(childBMI); i++ {
		if a < childBMI[i][0] {
			lo, hi := childBMI[i-1], childBMI[i]
			if hi[1] == 0 {
				hi[1] = p.adultBMI
			}
			return lo[1] + (hi[1]-lo[1])*(a-lo[0])/(hi[0]-lo[0])
		}
	}
	return p.adultBMI
}

// obs is an Observation of the patient at the encounter.
func (p *patient) obs(e *encounter, category, categoryDisplay, code, display string, at, issued time.Time, performer obj) obj {
	return obj{
		"resourceType": "Observation", "status": "final",
		"category":          arr{concept(obsCategory, category, categoryDisplay)},
		"code":              concept(loinc, code, display),
		"subject":           p.subject(),
		"encounter":         e.ref(),
		"effectiveDateTime": dateTime(at),
		"issued":            dateTime(issued),
		"performer":         arr{performer},
	}
}

func (p *patient) vital(e *encounter, at time.Time, code, display string, v float64, prec int, unit, ucumCode string) {
	r := p.obs(e, "vital-signs", "Vital Signs", code, display, at, at, e.prac.ref())
	r["valueQuantity"] = quantity(v, prec, unit, ucumCode)
	p.add(r)
}

// observations records the vital signs of every encounter, smoking status at the first checkup
// from age 13, and the laboratory tests the visit calls for.
func (p *patient) observations(e *encounter) {
	g := p.g
	at := e.start.Add(time.Duration(g.rangeInt(3, 15)) * time.Minute)
	if e.inProgress || at.After(e.end) {
		at = e.start
	}
	a := p.ageYears(at)
	fever := e.acute != nil && e.acute.fever && g.chance(0.7)

	h := p.heightAt(a) + g.norm(0, 0.4)
	w := p.bmiAt(a) * h * h / 10000 * (1 + g.norm(0, 0.02))
	// Adults are measured for height (and so BMI) at checkups only; children at every visit.
	measured := a < 18 || e.kind == checkup
	if measured {
		p.vital(e, at, "8302-2", "Body height", h, 1, "cm", "cm")
	}
	p.vital(e, at, "29463-7", "Body weight", w, 1, "kg", "kg")
	if a >= 2 && measured {
		p.vital(e, at, "39156-5", "Body mass index (BMI) [Ratio]", math.Round(w*10)/10/math.Pow(math.Round(h*10)/1000, 2), 1, "kg/m2", "kg/m2")
	}
	if a >= 3 {
		sys, dia := p.sysBase+0.5*math.Max(a-20, 0), p.diaBase+0.15*math.Max(a-20, 0)
		if a < 18 {
			sys, dia = 90+1.3*a, 55+a
		}
		if p.has(hypertension, at) {
			sys, dia = sys+18, dia+9
		}
		bp := p.obs(e, "vital-signs", "Vital Signs", "85354-9", "Blood pressure panel with all children optional", at, at, e.prac.ref())
		bp["component"] = arr{
			obj{"code": concept(loinc, "8480-6", "Systolic blood pressure"), "valueQuantity": quantity(sys+g.norm(0, 7), 0, "mmHg", "mm[Hg]")},
			obj{"code": concept(loinc, "8462-4", "Diastolic blood pressure"), "valueQuantity": quantity(dia+g.norm(0, 5), 0, "mmHg", "mm[Hg]")},
		}
		p.add(bp)
	}
	hr := g.norm(72, 8)
	if a < 18 {
		hr = math.Max(130-4*a, 75) + g.norm(0, 8)
	}
	if fever {
		hr += 15
	}
	p.vital(e, at, "8867-4", "Heart rate", hr, 0, "beats/minute", "/min")
	if e.kind != checkup && e.kind != followup {
		temp := g.norm(36.8, 0.25)
		if fever {
			temp = g.uniform(38.0, 39.7)
		}
		p.vital(e, at, "8310-5", "Body temperature", temp, 1, "C", "Cel")
	}
	if e.kind == emergency || e.kind == admission {
		rr := math.Max(32-1.1*a, 14) + g.norm(1, 1.5)
		if fever {
			rr += 3
		}
		spo2 := math.Min(g.norm(97.5, 1), 100)
		if p.has(copd, at) || e.acute != nil && e.acute.code == "233604007" {
			spo2 = g.norm(92, 2)
		}
		p.vital(e, at, "9279-1", "Respiratory rate", rr, 0, "breaths/minute", "/min")
		p.vital(e, at, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", spo2, 0, "%", "%")
	}
	if e.kind == checkup && a >= 13 && !p.smokingRecorded {
		p.smokingRecorded = true
		status := smokingStatus[0]
		if a >= 18 {
			status = smokingStatus[p.smoking]
		}
		r := p.obs(e, "social-history", "Social History", "72166-2", "Tobacco smoking status", at, at, e.prac.ref())
		r["valueCodeableConcept"] = concept(snomed, status[0], status[1])
		p.add(r)
	}

	var labs []lab
	switch {
	case e.kind == checkup && a >= 18:
		if g.chance(0.4) {
			labs = append(labs, glucose, hemoglobin)
		}
		if g.chance(0.35) {
			labs = append(labs, lipidPanel...)
		}
	case e.kind == followup:
		labs = e.follow.def.labs
	case e.kind == admission || e.kind == emergency && g.chance(0.35):
		labs = acuteLabs
	}
	for _, l := range labs {
		p.lab(e, at, l)
	}
}

// lab records one laboratory result, drawn a few minutes into the visit and issued hours later.
func (p *patient) lab(e *encounter, at time.Time, l lab) {
	g := p.g
	var v float64
	male := p.gender == "male"
	diabetic := p.has(diabetes2, at)
	lipids := p.has(hyperlipid, at) || p.has(coronary, at)
	switch l.code {
	case glucose.code:
		v = g.norm(88, 8)
		if diabetic {
			v = g.norm(155, 30)
		}
	case hba1c.code:
		v = g.norm(5.2, 0.3)
		if diabetic {
			v = g.norm(7.4, 0.9)
		}
	case cholesterol.code, ldl.code:
		v = g.norm(180, 22)
		if lipids {
			v += 50
		}
		if l.code == ldl.code {
			v = v*0.6 + g.norm(0, 6)
		}
	case hdl.code:
		v = g.norm(55, 10)
		if male {
			v -= 6
		}
	case triglycerides.code:
		v = g.norm(115, 30)
		if lipids || diabetic {
			v += 70
		}
	case creatinine.code:
		v = g.norm(0.8, 0.12)
		if male {
			v += 0.2
		}
		if diabetic && p.has(hypertension, at) {
			v += 0.2
		}
	case potassium.code:
		v = g.norm(4.2, 0.3)
	case sodium.code:
		v = g.norm(140, 2)
	case hemoglobin.code:
		v = g.norm(13.6, 0.9)
		if male && p.ageYears(at) >= 14 {
			v += 1.4
		}
	}
	v = math.Max(v, 0.1)
	issued := at.Add(time.Duration(g.rangeInt(60, 360)) * time.Minute)
	if issued.After(p.opt.Reference) {
		issued = p.opt.Reference
	}
	r := p.obs(e, "laboratory", "Laboratory", l.code, l.display, at, issued, ref("Organization/"+orgHospital, orgName(orgHospital)))
	r["valueQuantity"] = quantity(v, l.prec, l.unit, l.ucum)
	rng := obj{}
	if l.low > 0 {
		rng["low"] = quantity(l.low, l.prec, l.unit, l.ucum)
	}
	if l.high > 0 {
		rng["high"] = quantity(l.high, l.prec, l.unit, l.ucum)
	}
	r["referenceRange"] = arr{rng}
	interp := [2]string{"N", "Normal"}
	rounded := math.Round(v*math.Pow(10, float64(l.prec))) / math.Pow(10, float64(l.prec))
	switch {
	case l.high > 0 && rounded > l.high:
		interp = [2]string{"H", "High"}
	case l.low > 0 && rounded < l.low:
		interp = [2]string{"L", "Low"}
	}
	r["interpretation"] = arr{concept(obsInterpretation, interp[0], interp[1])}
	p.add(r)
}
