package detect

import (
	"encoding/json"
	"strings"
	"time"
)

type humanName struct {
	Family string
	Given  []string
}

func (x *resource) names() []humanName {
	var n []humanName
	json.Unmarshal(x.Name, &n)
	return n
}

// Name0 is a Location's name.
func (x *resource) Name0() string {
	var s string
	json.Unmarshal(x.Name, &s)
	return s
}

func (x *resource) family() string {
	if n := x.names(); len(n) > 0 {
		return n[0].Family
	}
	return ""
}

func (x *resource) given() string {
	if n := x.names(); len(n) > 0 && len(n[0].Given) > 0 {
		return n[0].Given[0]
	}
	return ""
}

func (x *resource) addr() (line, postcode string) {
	if len(x.Address) == 0 {
		return "", ""
	}
	a := x.Address[0]
	return norm(strings.Join(a.Line, " ")), norm(a.PostalCode)
}

func norm(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

// street is an address line without its house number.
func street(line string) string {
	if i := strings.IndexByte(line, ' '); i > 0 && line[0] >= '0' && line[0] <= '9' {
		return line[i+1:]
	}
	return line
}

func refID(r string) string {
	if i := strings.LastIndexByte(r, '/'); i >= 0 {
		return r[i+1:]
	}
	return r
}

func locName(locs map[string]string, reference, display string) string {
	if n, ok := locs[refID(reference)]; ok && n != "" {
		return n
	}
	return display
}

func (d *Directory) userIndex(id string) int32 {
	if i, ok := d.staffIdx[id]; ok {
		return i
	}
	d.Staff = append(d.Staff, Staff{ID: id, Dept: -1, Patient: -1})
	d.staffIdx[id] = int32(len(d.Staff) - 1)
	return int32(len(d.Staff) - 1)
}

func (d *Directory) user(id string) *Staff { return &d.Staff[d.userIndex(id)] }

// linkEmployees connects staff to their own Patient records: by the
// urn:phivault:user identifier, else by family name, given name and birth date.
func (d *Directory) linkEmployees() {
	byName := map[string]int32{}
	for i, s := range d.Staff {
		if s.Birth != "" {
			byName[norm(s.Family+"|"+s.Given+"|"+s.Birth)] = int32(i)
		}
	}
	for pi := range d.Patients {
		p := &d.Patients[pi]
		if p.Employee < 0 && p.Birth != "" {
			if ui, ok := byName[norm(p.Family+"|"+p.Given+"|"+p.Birth)]; ok {
				p.Employee = ui
			}
		}
		if p.Employee >= 0 {
			d.Staff[p.Employee].Patient = int32(pi)
		}
	}
}

func parseT(s string) int64 {
	if s == "" {
		return 0
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Unix()
		}
	}
	return 0
}

func secs(d time.Duration) int64 { return int64(d / time.Second) }

// addLinks records the relations one clinical resource creates.
func (d *Directory) addLinks(x *resource, pracs, locs map[string]string) {
	pid := refID(x.Subject.Reference)
	var users []int32
	addUser := func(r ref) {
		if strings.HasPrefix(r.Reference, "Patient/") {
			pid = refID(r.Reference)
			return
		}
		if u, ok := pracs[refID(r.Reference)]; ok {
			users = append(users, d.userIndex(u))
		}
	}
	var depts []int16
	var from, to int64
	var kind uint8
	switch x.ResourceType {
	case "Encounter":
		kind = relEncounter
		for _, p := range x.Participant {
			addUser(p.Individual)
		}
		for _, l := range x.Location {
			depts = append(depts, d.DeptIndex(locName(locs, l.Location.Reference, l.Location.Display)))
		}
		from, to = parseT(x.Period.Start)-secs(beforeEnc), parseT(x.Period.End)+secs(afterEnc)
		if x.Period.End == "" {
			to = 1 << 62
		}
	case "Appointment":
		kind = relAppointment
		for _, p := range x.Participant {
			addUser(p.Actor)
		}
		from, to = parseT(x.Start)-secs(beforeAppt), max(parseT(x.End), parseT(x.Start))+secs(afterAppt)
	case "CareTeam":
		kind = relCareTeam
		for _, p := range x.Participant {
			addUser(p.Member)
		}
		from, to = parseT(x.Period.Start)-secs(beforeEnc), parseT(x.Period.End)+secs(afterEnc)
		if x.Period.End == "" {
			to = 1 << 62
		}
	default: // ServiceRequest, MedicationRequest
		kind = relOrder
		addUser(x.Requester)
		for _, l := range x.LocRef {
			depts = append(depts, d.DeptIndex(locName(locs, l.Reference, l.Display)))
		}
		at := parseT(x.AuthoredOn)
		from, to = at-secs(beforeOrder), at+secs(afterOrder)
	}
	pi, ok := d.patIdx[pid]
	if !ok {
		return
	}
	for _, u := range users {
		d.rels[pi] = append(d.rels[pi], relation{from: from, to: to, user: u, dept: -1, kind: kind})
	}
	for _, dp := range depts {
		if dp >= 0 {
			d.rels[pi] = append(d.rels[pi], relation{from: from, to: to, user: -1, dept: dp, kind: kind})
		}
	}
	if kind == relEncounter {
		d.encWin[pi] = append(d.encWin[pi], [2]int64{from + secs(beforeEnc), to - secs(afterEnc)})
	}
}

// Explain says why user u may access patient p at time t, working in
// department ctx (the department the log names) and belonging to
// department home (the directory's). It returns the relation kind, or 0.
func (d *Directory) Explain(u int32, p int32, t int64, ctx, home int16) uint8 {
	if p < 0 || int(p) >= len(d.rels) {
		return 0
	}
	for _, r := range d.rels[p] {
		if t < r.from || t > r.to {
			continue
		}
		if r.user == u || (r.dept >= 0 && (r.dept == ctx || r.dept == home)) {
			return r.kind
		}
	}
	return 0
}

// InCare tells whether patient p had an encounter anywhere in the
// hospital from before days before t to after days after it. Records
// and billing work goes on for weeks after discharge.
func (d *Directory) InCare(p int32, t int64, before, after time.Duration) bool {
	if p < 0 || int(p) >= len(d.encWin) {
		return false
	}
	for _, w := range d.encWin[p] {
		if t >= w[0]-secs(before) && t <= w[1]+secs(after) {
			return true
		}
	}
	return false
}
