package synth

import (
	"fmt"
	"strconv"
)

// specialty is what a practitioner does; it decides their organization and location.
type specialty int

const (
	noSpecialty specialty = iota
	familyMedicine
	internalMedicine
	pediatrics
	emergencyMedicine
	cardiology
	endocrinology
	nursing
)

// Ids of the shared organizations and locations. They are fixed so that the shared bundle is
// idempotent and references from patient bundles are stable across seeds.
const (
	orgHospital = "synth-org-hospital"
	orgPrimary  = "synth-org-primary"
	orgChildren = "synth-org-children"

	locED        = "synth-loc-ed"
	locInpatient = "synth-loc-inpatient"
	locSpecialty = "synth-loc-specialty"
	locPrimary   = "synth-loc-primary"
	locChildren  = "synth-loc-children"
)

var specialties = [...]struct {
	code, display string // SNOMED CT practice setting
	doctor        bool
	org, loc      string
}{
	familyMedicine:    {"419772000", "Family practice", true, orgPrimary, locPrimary},
	internalMedicine:  {"419192003", "Internal medicine", true, orgHospital, locInpatient},
	pediatrics:        {"394537008", "Pediatric specialty", true, orgChildren, locChildren},
	emergencyMedicine: {"773568002", "Emergency medicine", true, orgHospital, locED},
	cardiology:        {"394579002", "Cardiology", true, orgHospital, locSpecialty},
	endocrinology:     {"394583002", "Endocrinology", true, orgHospital, locSpecialty},
	nursing:           {"419772000", "Family practice", false, orgPrimary, locPrimary},
}

// specialtyCycle assigns specialties to practitioners in turn; its length is the minimum staff.
var specialtyCycle = []specialty{familyMedicine, internalMedicine, pediatrics, emergencyMedicine, cardiology, endocrinology, nursing, familyMedicine, familyMedicine, internalMedicine, emergencyMedicine, nursing}

type orgDef struct {
	id, name, partOf, npi, phone, line, city, zip string
}

var orgs = []orgDef{
	{orgHospital, "Riverbend General Hospital", "", "1093817462", "614-555-0100", "2150 Riverbend Pkwy", "Columbus", "43210"},
	{orgPrimary, "Riverbend Family Medicine", orgHospital, "1194728303", "614-555-0110", "455 Schrock Rd", "Westerville", "43081"},
	{orgChildren, "Riverbend Children's Clinic", orgHospital, "1285639146", "614-555-0120", "87 Frantz Rd", "Dublin", "43017"},
}

type locDef struct {
	id, name, org, typeCode, typeDisplay string
	lat, lon                             float64
}

var locs = []locDef{
	{locED, "Riverbend General Hospital Emergency Department", orgHospital, "ER", "Emergency room", 39.9987, -83.0221},
	{locInpatient, "Riverbend General Hospital Inpatient Unit 4 West", orgHospital, "HOSP", "Hospital", 39.9991, -83.0215},
	{locSpecialty, "Riverbend Heart, Diabetes and Endocrine Clinics", orgHospital, "HOSP", "Hospital", 39.9979, -83.0230},
	{locPrimary, "Riverbend Family Medicine Westerville", orgPrimary, "PC", "primary care clinic", 40.1106, -82.9714},
	{locChildren, "Riverbend Children's Clinic Dublin", orgChildren, "PEDC", "pediatrics clinic", 40.0931, -83.1290},
}

func orgName(id string) string {
	for _, o := range orgs {
		if o.id == id {
			return o.name
		}
	}
	panic("synth: unknown organization " + id)
}

// practitioner is one member of the shared staff.
type practitioner struct {
	id, roleID   string
	spec         specialty
	gender       string
	given, famly string
	npi          string
}

func (p practitioner) display() string {
	if specialties[p.spec].doctor {
		return "Dr. " + p.given + " " + p.famly
	}
	return p.given + " " + p.famly + ", RN"
}

func (p practitioner) ref() obj { return ref("Practitioner/"+p.id, p.display()) }

// roster is the shared staff of a population, drawn from random stream 0.
type roster struct {
	pracs  []practitioner
	bySpec [nursing + 1][]int // indexes into pracs by specialty, ascending
}

func newRoster(opt Options) *roster {
	g := gen{newRand(opt.Seed, 0)}
	ro := &roster{}
	for i := range opt.Practitioners {
		c := pickCulture(g)
		p := practitioner{
			id:     fmt.Sprintf("synth-prac-%04d", i+1),
			roleID: fmt.Sprintf("synth-role-%04d", i+1),
			spec:   specialtyCycle[i%len(specialtyCycle)],
			gender: pick(g, []string{"male", "female"}),
			famly:  pick(g, c.family),
			npi:    npi(g),
		}
		if p.gender == "male" {
			p.given = pick(g, c.male)
		} else {
			p.given = pick(g, c.female)
		}
		ro.bySpec[p.spec] = append(ro.bySpec[p.spec], i)
		ro.pracs = append(ro.pracs, p)
	}
	return ro
}

// any returns a practitioner of the specialty chosen by g.
func (ro *roster) any(g gen, s specialty) practitioner {
	return ro.pracs[pick(g, ro.bySpec[s])]
}

// npi returns a random individual National Provider Identifier with a valid check digit.
func npi(g gen) string {
	s := "1" + fmt.Sprintf("%08d", g.intn(100000000))
	return s + strconv.Itoa(luhnCheck("80840"+s))
}

// luhnCheck returns the Luhn check digit for digits.
func luhnCheck(digits string) int {
	sum := 0
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if (len(digits)-1-i)%2 == 0 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return (10 - sum%10) % 10
}

func workAddress(line, city, zip string) obj {
	return obj{"use": "work", "type": "both", "line": arr{line}, "city": city, "state": "OH", "postalCode": zip, "country": "US"}
}

func putEntry(resource obj) obj {
	url := resource["resourceType"].(string) + "/" + resource["id"].(string)
	return obj{"resource": resource, "request": obj{"method": "PUT", "url": url}}
}

// bundle renders the shared resources as a transaction of PUTs.
func (ro *roster) bundle() obj {
	var entries arr
	for _, o := range orgs {
		r := obj{
			"resourceType": "Organization", "id": o.id, "active": true, "name": o.name,
			"identifier": arr{obj{"system": npiSystem, "value": o.npi}},
			"type":       arr{concept(orgType, "prov", "Healthcare Provider")},
			"telecom":    arr{obj{"system": "phone", "value": o.phone, "use": "work"}},
			"address":    arr{workAddress(o.line, o.city, o.zip)},
		}
		if o.partOf != "" {
			r["partOf"] = ref("Organization/"+o.partOf, orgName(o.partOf))
		}
		entries = append(entries, putEntry(r))
	}
	for _, l := range locs {
		o := orgs[0]
		for _, c := range orgs {
			if c.id == l.org {
				o = c
			}
		}
		entries = append(entries, putEntry(obj{
			"resourceType": "Location", "id": l.id, "status": "active", "mode": "instance", "name": l.name,
			"type":                 arr{concept(roleCode, l.typeCode, l.typeDisplay)},
			"telecom":              arr{obj{"system": "phone", "value": o.phone, "use": "work"}},
			"address":              workAddress(o.line, o.city, o.zip),
			"position":             obj{"latitude": num(l.lat, 4), "longitude": num(l.lon, 4)},
			"managingOrganization": ref("Organization/"+l.org, o.name),
		}))
	}
	for i, p := range ro.pracs {
		sp := specialties[p.spec]
		degree, prefix := concept(degreeLicense, "RN", "Registered Nurse"), arr{}
		if sp.doctor {
			degree, prefix = concept(degreeLicense, "MD", "Doctor of Medicine"), arr{"Dr."}
		}
		name := obj{"use": "official", "family": p.famly, "given": arr{p.given}}
		if len(prefix) > 0 {
			name["prefix"] = prefix
		}
		phone := fmt.Sprintf("614-555-%04d", 200+i%800)
		email := fmt.Sprintf("%s.%s@riverbend.example.org", emailPart(p.given), emailPart(p.famly))
		entries = append(entries, putEntry(obj{
			"resourceType": "Practitioner", "id": p.id, "active": true,
			"identifier":    arr{obj{"system": npiSystem, "value": p.npi}},
			"name":          arr{name},
			"gender":        p.gender,
			"telecom":       arr{obj{"system": "phone", "value": phone, "use": "work"}, obj{"system": "email", "value": email, "use": "work"}},
			"qualification": arr{obj{"code": degree}},
		}))
		role, roleDisplay := "nurse", "Nurse"
		if sp.doctor {
			role, roleDisplay = "doctor", "Doctor"
		}
		entries = append(entries, putEntry(obj{
			"resourceType": "PractitionerRole", "id": p.roleID, "active": true,
			"practitioner": p.ref(),
			"organization": ref("Organization/"+sp.org, orgName(sp.org)),
			"code":         arr{concept(practRole, role, roleDisplay)},
			"specialty":    arr{concept(snomed, sp.code, sp.display)},
			"location":     arr{ref("Location/"+sp.loc, "")},
			"telecom":      arr{obj{"system": "phone", "value": phone, "use": "work"}},
		}))
	}
	return transaction(entries)
}
