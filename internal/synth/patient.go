package synth

import (
	"fmt"
	"strings"
	"time"
)

// patient is the state behind one patient bundle.
type patient struct {
	g    gen
	opt  Options
	ro   *roster
	uuid string // the Patient's fullUrl is "urn:uuid:" + uuid

	culture      culture
	gender       string
	given        []string
	family       string
	birth, death time.Time // death is zero for the living
	end          time.Time // death or the reference date: nothing happens after it
	pcp, nurse   practitioner
	security     string // v3-Confidentiality code for VIPs, or ""

	// Physiology, fixed per patient and varied per measurement.
	adultHeight, adultBMI float64
	sysBase, diaBase      float64
	smoking               int // index into smokingStatus
	smokingRecorded       bool
	chronic               []*condState
	entries               arr
}

// patientBundle builds patient i of the population from random stream i+1.
func patientBundle(opt Options, ro *roster, i int) obj {
	p := &patient{g: gen{newRand(opt.Seed, uint64(i)+1)}, opt: opt, ro: ro}
	p.uuid = p.g.uuid()
	p.demographics()
	res := p.resource(i)
	p.add(res)
	p.clinical()
	if p.security != "" {
		label := arr{coding(confidentiality, p.security, map[string]string{"R": "restricted", "V": "very restricted"}[p.security])}
		for _, e := range p.entries {
			e.(obj)["resource"].(obj)["meta"] = obj{"security": label}
		}
	}
	return transaction(p.entries)
}

// add appends a resource as a POST entry under a new urn:uuid and returns that fullUrl.
func (p *patient) add(r obj) string { return p.addAs(p.g.uuid(), r) }

func (p *patient) addAs(id string, r obj) string {
	if r["resourceType"] == "Patient" {
		id = p.uuid
	}
	full := "urn:uuid:" + id
	p.entries = append(p.entries, obj{
		"fullUrl":  full,
		"resource": r,
		"request":  obj{"method": "POST", "url": r["resourceType"]},
	})
	return full
}

func (p *patient) subject() obj { return ref("urn:uuid:"+p.uuid, "") }

func (p *patient) ageAt(t time.Time) int { return ageAt(p.birth, t) }

// ageYears is the fractional age at t.
func (p *patient) ageYears(t time.Time) float64 {
	return t.Sub(p.birth).Hours() / (365.25 * 24)
}

func (p *patient) demographics() {
	g := p.g
	ref := p.opt.Reference
	p.culture = pickCulture(g)
	switch n := g.intn(1000); {
	case n < 493:
		p.gender = "male"
	case n < 993:
		p.gender = "female"
	case n < 997:
		p.gender = "other"
	default:
		p.gender = "unknown"
	}
	var age int
	switch n := g.intn(100); {
	case n < 20:
		age = g.intn(18)
	case n < 55:
		age = g.rangeInt(18, 44)
	case n < 82:
		age = g.rangeInt(45, 64)
	default:
		age = g.rangeInt(65, 96)
	}
	p.birth = ref.AddDate(-age, 0, -1-g.intn(364)).Truncate(24 * time.Hour)
	p.end = ref
	deathChance := 0.01 // a few deaths per hundred patients, mostly among the old
	switch {
	case age >= 75:
		deathChance = 0.2
	case age >= 60:
		deathChance = 0.07
	}
	if g.chance(deathChance) && age >= 2 {
		p.death = g.between(later(p.birth.AddDate(1, 0, 0), ref.AddDate(-4, 0, 0)), ref.Add(-24*time.Hour))
		p.end = p.death
	}

	names := p.culture.female
	if p.gender == "male" || p.gender != "female" && g.chance(0.5) {
		names = p.culture.male
	}
	p.given = []string{pick(g, names)}
	if p.culture.lang != "zh" && p.culture.lang != "ko" && g.chance(0.35) {
		if middle := pick(g, names); middle != p.given[0] {
			p.given = append(p.given, middle)
		}
	}
	p.family = pick(g, p.culture.family)
	if p.culture.twoSurnames && g.chance(0.6) {
		if second := pick(g, p.culture.family); second != p.family {
			p.family += " " + second
		}
	}

	if p.pcp = p.ro.any(g, familyMedicine); age < 18 {
		p.pcp = p.ro.any(g, pediatrics)
	}
	p.nurse = p.ro.any(g, nursing)
	switch n := g.intn(100); {
	case n < 2:
		p.security = "V"
	case n < 5:
		p.security = "R"
	}
}

var (
	smokingStatus = [][2]string{{"266919005", "Never smoked tobacco"}, {"8517006", "Ex-smoker"}, {"77176002", "Smoker"}}
	maritalCodes  = [][2]string{{"M", "Married"}, {"S", "Never Married"}, {"D", "Divorced"}, {"W", "Widowed"}}
)

// mrn and ssn are affine permutations of the patient index, so they never repeat within a
// population (MRNs below 10^8 patients, SSNs below 10^6).
func mrn(seed int64, i int) string {
	return fmt.Sprintf("M%08d", (uint64(i)*54435761+splitmix(uint64(seed))%100000000)%100000000)
}

func ssn(seed int64, i int) string {
	v := (uint64(i)*387419 + splitmix(uint64(seed)+1)%1000000) % 1000000
	return fmt.Sprintf("999-%02d-%04d", v/10000, v%10000)
}

// resource builds the Patient resource for patient index i.
func (p *patient) resource(i int) obj {
	g := p.g
	age := p.ageAt(p.end)
	name := obj{"use": "official", "family": p.family, "given": toArr(p.given)}
	if age >= 18 && g.chance(0.25) {
		prefix := map[string]string{"male": "Mr.", "female": pick(g, []string{"Ms.", "Mrs."})}[p.gender]
		if g.chance(0.1) {
			prefix = "Dr."
		}
		if prefix != "" {
			name["prefix"] = arr{prefix}
		}
	}
	if p.gender == "male" && p.culture.lang == "en-US" && g.chance(0.05) {
		name["suffix"] = arr{pick(g, []string{"Jr.", "Sr.", "III"})}
	}
	names := arr{name}
	if p.gender == "female" && age >= 25 && p.culture.lang == "en-US" && g.chance(0.3) {
		maiden := pick(g, p.culture.family)
		if maiden != p.family {
			names = append(names, obj{"use": "maiden", "family": maiden, "given": toArr(p.given)})
		}
	}

	pl := pick(g, localPlaces)
	if g.chance(0.1) {
		pl = pick(g, farPlaces)
	}
	lines := arr{fmt.Sprintf("%d %s %s", g.rangeInt(1, 9899), pick(g, streetNames), pick(g, streetSuffixes))}
	if g.chance(0.2) {
		lines = append(lines, fmt.Sprintf("Apt %d%c", g.rangeInt(1, 40), 'A'+rune(g.intn(6))))
	}
	moved := g.between(later(p.birth, p.opt.Reference.AddDate(-20, 0, 0)), p.end)
	address := obj{"use": "home", "type": "both", "line": lines, "city": pl.city, "state": pl.state,
		"postalCode": pick(g, pl.zips), "country": "US", "period": obj{"start": date(moved)}}

	phone := fmt.Sprintf("%s-555-01%02d", pick(g, pl.areaCodes), g.intn(100))
	telecom := arr{obj{"system": "phone", "value": phone, "use": pick(g, []string{"home", "mobile", "mobile"}), "rank": 1}}
	if age >= 14 && g.chance(0.85) {
		email := fmt.Sprintf("%s.%s%d@%s", emailPart(p.given[0]), emailPart(strings.Fields(p.family)[0]), g.rangeInt(1, 99),
			pick(g, []string{"example.com", "example.org", "example.net"}))
		telecom = append(telecom, obj{"system": "email", "value": email, "use": "home"})
	}

	ids := arr{obj{"use": "usual", "type": concept(identifierType, "MR", "Medical record number"),
		"system": MRNSystem, "value": mrn(p.opt.Seed, i), "assigner": ref("Organization/"+orgHospital, orgName(orgHospital))}}
	if age >= 1 && g.chance(0.95) {
		ids = append(ids, obj{"use": "official", "type": concept(identifierType, "SS", "Social Security number"),
			"system": SSNSystem, "value": ssn(p.opt.Seed, i)})
	}

	marital := maritalCodes[1]
	if age >= 20 {
		weights := []int{50, 28, 13, max(age-55, 0) / 2}
		marital = maritalCodes[weighted(g, weights)]
	}
	comm := arr{obj{"language": concept(bcp47, p.culture.lang, p.culture.langDisplay), "preferred": true}}
	if p.culture.lang != "en-US" {
		english := obj{"language": concept(bcp47, "en-US", "English (United States)")}
		if g.chance(0.5) {
			comm = arr{obj{"language": english["language"], "preferred": true}, obj{"language": concept(bcp47, p.culture.lang, p.culture.langDisplay)}}
		} else {
			comm = append(comm, english)
		}
	}

	r := obj{
		"resourceType": "Patient", "active": true,
		"identifier": ids, "name": names, "telecom": telecom, "gender": p.gender,
		"birthDate": date(p.birth), "address": arr{address},
		"maritalStatus":        concept(maritalStatus, marital[0], marital[1]),
		"communication":        comm,
		"generalPractitioner":  arr{p.pcp.ref()},
		"managingOrganization": ref("Organization/"+orgHospital, orgName(orgHospital)),
	}
	if !p.death.IsZero() {
		r["deceasedDateTime"] = dateTime(p.death)
	}
	return r
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func toArr(ss []string) arr {
	out := make(arr, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// weighted returns an index chosen with probability proportional to weights.
func weighted(g gen, weights []int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := g.intn(total)
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	panic("unreachable")
}
