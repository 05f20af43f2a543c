// Package detect finds privacy and security incidents in access logs:
// snooping on family, co-workers, neighbours, VIPs and oneself, access
// with no treatment relationship, after-hours browsing, bulk reads,
// account takeover, credential stuffing and break-the-glass abuse.
//
// It owns the directory facts it needs (staff, patients, care
// relationships, read from FHIR resources), the explanation of each
// access by a clinical reason, the rules, a per-user and per-peer-group
// anomaly score, and alerts grouped into one case per user. Every alert
// carries plain-language reasons. It never sees ground truth: evaluation
// against labels lives in Eval, which the detector does not call.
package detect

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// UserSystem is the identifier system naming a phivault user.
const UserSystem = "urn:phivault:user"

// Staff is a user account with what the directory says about it.
type Staff struct {
	ID, Name, Family, Given, Birth, Line, Postcode, Role string
	Dept                                                 int16
	Disabled                                             bool
	InDirectory                                          bool
	Patient                                              int32 // own Patient record, or -1
}

// Patient is what the rules need to know about a patient.
type Patient struct {
	ID, Family, Given, Birth, Line, Postcode string
	Restricted                               string // meta.security R or V
	Deceased                                 bool
	Employee                                 int32 // staff index, or -1
}

// Relation kinds: what links a user (or a department) to a patient.
const (
	relEncounter uint8 = iota + 1
	relAppointment
	relCareTeam
	relOrder
)

var relNames = map[uint8]string{relEncounter: "encounter", relAppointment: "appointment", relCareTeam: "care team", relOrder: "order"}

type relation struct {
	from, to int64 // unix seconds; the window in which the relation explains access
	user     int32 // -1: the relation is to a department
	dept     int16 // -1: the relation is to a user
	kind     uint8
}

// Directory holds staff, patients and care relationships.
type Directory struct {
	Staff    []Staff
	Patients []Patient
	staffIdx map[string]int32
	patIdx   map[string]int32
	deptIdx  map[string]int16
	Depts    []string
	rels     [][]relation // by patient
	encWin   [][][2]int64 // by patient: encounter windows in any department
	// Skipped counts the stored resources DirectoryFrom left out because
	// they did not decode as the directory expects.
	Skipped int
}

// Windows around a relation in which access counts as explained.
var (
	beforeEnc, afterEnc     = 2 * 24 * time.Hour, 7 * 24 * time.Hour
	beforeAppt, afterAppt   = 7 * 24 * time.Hour, 2 * 24 * time.Hour
	beforeOrder, afterOrder = 24 * time.Hour, 14 * 24 * time.Hour
	afterCare               = 30 * 24 * time.Hour // InCare: a patient is in the hospital's care
)

type ref struct{ Reference, Display string }

type resource struct {
	ResourceType, ID string
	Identifier       []struct{ System, Value string }
	BirthDate        string
	Address          addresses
	Meta             struct {
		Security []struct{ System, Code string }
	}
	DeceasedDateTime string
	DeceasedBoolean  bool
	Active           *bool
	Practitioner     ref
	Code             json.RawMessage // a list on PractitionerRole, one concept on orders
	Specialty        []struct{ Text string }
	Location         []struct {
		Reference, Display string
		Location           ref
	}
	Subject     ref
	Participant []struct{ Individual, Actor, Member ref }
	Period      struct{ Start, End string }
	Start, End  string
	Name        json.RawMessage // HumanName list, or a Location's string
	Requester   ref
	AuthoredOn  string
	LocRef      []ref `json:"locationReference"`
}

// address is the part of an R4 Address the rules compare.
type address struct {
	Line       []string
	PostalCode string
}

// addresses holds a resource's addresses: a list on Patient and
// Practitioner, a single Address on Location.
type addresses []address

// UnmarshalJSON implements json.Unmarshaler, taking either shape.
func (a *addresses) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		var one address
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*a = addresses{one}
		return nil
	}
	return json.Unmarshal(b, (*[]address)(a))
}

// DeptIndex returns the index of a department name, adding it if new.
func (d *Directory) DeptIndex(name string) int16 {
	if name == "" {
		return -1
	}
	k := strings.ToLower(strings.TrimSpace(name))
	if i, ok := d.deptIdx[k]; ok {
		return i
	}
	d.Depts = append(d.Depts, name)
	d.deptIdx[k] = int16(len(d.Depts) - 1)
	return int16(len(d.Depts) - 1)
}

// LoadDirectory reads FHIR resources, one JSON object per line. Lines that
// are not resources it uses are ignored; malformed lines are errors.
func LoadDirectory(r io.Reader) (*Directory, error) {
	b := newDirectoryBuilder()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var x resource
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			return nil, fmt.Errorf("directory line %d: %v", line, err)
		}
		b.add(&x)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return b.finish(), nil
}

// directoryBuilder makes a Directory of resources added in any order.
type directoryBuilder struct {
	d            *Directory
	locs         map[string]string // Location id -> name
	pracs        map[string]string // Practitioner id -> user id
	roles, links []resource
}

func newDirectoryBuilder() *directoryBuilder {
	return &directoryBuilder{
		d:    &Directory{staffIdx: map[string]int32{}, patIdx: map[string]int32{}, deptIdx: map[string]int16{}},
		locs: map[string]string{}, pracs: map[string]string{},
	}
}

// add takes one resource; those of types the directory does not use are
// ignored.
func (b *directoryBuilder) add(x *resource) {
	d := b.d
	switch x.ResourceType {
	case "Location":
		b.locs[x.ID] = x.Name0()
	case "Practitioner":
		for _, id := range x.Identifier {
			if id.System == UserSystem && id.Value != "" {
				b.pracs[x.ID] = id.Value
				s := d.user(id.Value)
				s.InDirectory = true
				s.Family, s.Given, s.Birth = x.family(), x.given(), x.BirthDate
				s.Name = strings.TrimSpace(s.Given + " " + s.Family)
				s.Line, s.Postcode = x.addr()
			}
		}
	case "PractitionerRole":
		b.roles = append(b.roles, *x)
	case "Patient":
		p := Patient{ID: x.ID, Family: x.family(), Given: x.given(), Birth: x.BirthDate, Employee: -1,
			Deceased: x.DeceasedDateTime != "" || x.DeceasedBoolean}
		p.Line, p.Postcode = x.addr()
		for _, s := range x.Meta.Security {
			if s.Code == "R" || s.Code == "V" {
				p.Restricted = s.Code
			}
		}
		for _, id := range x.Identifier {
			if id.System == UserSystem && id.Value != "" {
				p.Employee = d.userIndex(id.Value)
			}
		}
		d.patIdx[x.ID] = int32(len(d.Patients))
		d.Patients = append(d.Patients, p)
	case "Encounter", "Appointment", "CareTeam", "ServiceRequest", "MedicationRequest":
		b.links = append(b.links, *x)
	}
}

// finish links roles to staff and care relationships to patients, and
// returns the directory.
func (b *directoryBuilder) finish() *Directory {
	d := b.d
	for _, x := range b.roles {
		ui, ok := b.pracs[refID(x.Practitioner.Reference)]
		if !ok {
			continue
		}
		s := d.user(ui)
		var code []struct {
			Text   string
			Coding []struct{ Code string }
		}
		json.Unmarshal(x.Code, &code)
		if len(code) > 0 {
			s.Role = code[0].Text
			if s.Role == "" && len(code[0].Coding) > 0 {
				s.Role = code[0].Coding[0].Code
			}
		}
		dept := ""
		if len(x.Specialty) > 0 {
			dept = x.Specialty[0].Text
		}
		if dept == "" && len(x.Location) > 0 {
			dept = locName(b.locs, x.Location[0].Reference, x.Location[0].Display)
		}
		s.Dept = d.DeptIndex(dept)
		s.Disabled = x.Active != nil && !*x.Active
	}
	d.linkEmployees()
	d.rels = make([][]relation, len(d.Patients))
	d.encWin = make([][][2]int64, len(d.Patients))
	for i := range b.links {
		d.addLinks(&b.links[i], b.pracs, b.locs)
	}
	return d
}
