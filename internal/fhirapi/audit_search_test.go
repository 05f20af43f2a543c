package fhirapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/audit"
)

// auditSearchCoverageExtra covers AuditEvent search and read, the refused
// writes, and $disclosures for TestAuditCoverage.
func auditSearchCoverageExtra(t *testing.T, cv *coverage) {
	search := ev("search-type", "E", nil, "AuditEvent/0", "AuditEvent/1")
	search.Query = true
	cv.do(admin, "GET", "/fhir/AuditEvent?_count=2", nil, 200, []evSummary{search})
	cv.do(admin, "POST", "/fhir/AuditEvent/_search", "_count=2", 200, []evSummary{search}, "Content-Type", "application/x-www-form-urlencoded")
	bad := failed("search-type", "E")
	bad.Query = true
	cv.do(admin, "GET", "/fhir/AuditEvent?bogus=1", nil, 400, []evSummary{bad})
	cv.do(admin, "GET", "/fhir/AuditEvent/0", nil, 200, []evSummary{ev("read", "R", nil, "AuditEvent/0")})
	cv.do(admin, "GET", "/fhir/AuditEvent/99999999", nil, 404, []evSummary{failed("read", "R")})
	cv.do(admin, "GET", "/fhir/AuditEvent/_history", nil, 400, []evSummary{failed("history-type", "R")})
	cv.do(admin, "POST", "/fhir/AuditEvent", `{"resourceType":"AuditEvent"}`, 405, []evSummary{failed("create", "C")})
	cv.do(admin, "PUT", "/fhir/AuditEvent?action=R", `{"resourceType":"AuditEvent"}`, 405, []evSummary{failed("update", "U")})
	cv.do(admin, "DELETE", "/fhir/AuditEvent?action=R", nil, 405, []evSummary{failed("delete", "D")})
	cv.do(admin, "PUT", "/fhir/AuditEvent/0", `{"resourceType":"AuditEvent","id":"0"}`, 405, []evSummary{failed("update", "U")})
	cv.do(admin, "PATCH", "/fhir/AuditEvent/0", `[]`, 405, []evSummary{failed("patch", "U")}, "Content-Type", "application/json-patch+json")
	cv.do(admin, "DELETE", "/fhir/AuditEvent/0", nil, 405, []evSummary{failed("delete", "D")})
	cv.do(admin, "GET", "/fhir/Patient/p2/$disclosures", nil, 200, []evSummary{ev("disclosures", "E", ps("p2"))})
	cv.do(admin, "GET", "/fhir/Patient/p2/$disclosures?_format=pdf", nil, 400, []evSummary{failed("disclosures", "E")})
	deny := func(i, a string, patients ...string) evSummary {
		return evSummary{Interaction: i, Action: a, Outcome: "4", User: "doc", Decision: "deny", Patients: patients}
	}
	deniedSearch := deny("search-type", "E")
	deniedSearch.Query = true
	cv.do(doctor, "GET", "/fhir/AuditEvent?patient=p2", nil, 403, []evSummary{deniedSearch})
	cv.do(doctor, "GET", "/fhir/AuditEvent/0", nil, 403, []evSummary{deny("read", "R")})
	cv.do(doctor, "GET", "/fhir/Patient/p2/$disclosures", nil, 403, []evSummary{deny("disclosures", "E", "p2")})
}

// searchAudit runs an AuditEvent search as admin and returns the ids of
// all pages, following next links, and the pages' count.
func searchAudit(t *testing.T, env *testEnv, query string) ([]string, int) {
	t.Helper()
	var ids []string
	path := "/fhir/AuditEvent?" + query
	pages := 0
	for path != "" {
		pages++
		w := raw(env.h, &admin, "GET", path, nil)
		if w.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		var b struct {
			Type  string
			Link  []struct{ Relation, URL string }
			Entry []struct {
				FullURL  string
				Resource map[string]any
				Search   struct{ Mode string }
			}
		}
		if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Type != "searchset" {
			t.Fatalf("GET %s: %v %s", path, err, w.Body)
		}
		for _, e := range b.Entry {
			if e.Search.Mode != "match" {
				continue
			}
			id, _ := e.Resource["id"].(string)
			if e.Resource["resourceType"] != "AuditEvent" || e.FullURL != testBase+"/AuditEvent/"+id {
				t.Fatalf("entry %s: %v", e.FullURL, e.Resource)
			}
			ids = append(ids, id)
		}
		path = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				path = strings.TrimPrefix(l.URL, testBase[:strings.Index(testBase, "/fhir")])
			}
		}
	}
	return ids, pages
}

// TestAuditEventSearch: each BALP parameter selects exactly the events
// that match it, over integrated and not yet integrated events, and pages
// follow in log order.
func TestAuditEventSearch(t *testing.T) {
	env := newTestEnv(t)
	_, sign := signer(t, env)
	ctx := context.Background()
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	type spec struct {
		user, patient, inter, action, outcome, entity string
		at                                            time.Time
	}
	specs := []spec{
		{"alice", "p1", "read", "R", "0", "Observation/o1/_history/2", day.Add(9 * time.Hour)},
		{"alice", "p2", "read", "R", "0", "Patient/p2/_history/1", day.Add(10 * time.Hour)},
		{"bob", "p1", "update", "U", "0", "Observation/o1/_history/3", day.Add(34 * time.Hour)},
		{"bob", "p1", "read", "R", "4", "", day.Add(35 * time.Hour)},
		{"carol", "p3", "search-type", "E", "0", "Observation/o9/_history/1", day.AddDate(0, 1, 0)},
		{"alice", "p1", "delete", "D", "0", "Observation/o1/_history/4", day.AddDate(0, 1, 2)},
	}
	rec := func(s spec) {
		e := &audit.Event{Time: s.at, Interaction: s.inter, Action: s.action, Outcome: s.outcome, UserID: s.user, Patients: []string{s.patient}, Allowed: true}
		if s.entity != "" {
			e.Entities = []string{s.entity}
		}
		if err := env.api.Audit.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range specs[:4] {
		rec(s)
	}
	sign() // the first four indexed, the others in the tail
	for _, s := range specs[4:] {
		rec(s)
	}
	ids := func(is ...int) []string {
		var out []string
		for _, i := range is {
			out = append(out, itoa(int64(i)))
		}
		return out
	}
	for _, c := range []struct {
		q    string
		want []string
	}{
		{"patient=p1", ids(0, 2, 3, 5)},
		{"patient=Patient/p1&agent=bob", ids(2, 3)},
		{"agent=alice&action=R", ids(0, 1)},
		{"action=U,D", ids(2, 5)},
		{"outcome=4", ids(3)},
		{"subtype=read", ids(0, 1, 3)},
		{"subtype=http://hl7.org/fhir/restful-interaction|search-type", ids(4)},
		{"entity=Observation/o1", ids(0, 2, 5)},
		{"entity=Patient/p2", ids(1)},
		{"date=2026-03-10", ids(0, 1)},
		{"date=ge2026-03-11&date=lt2026-04", ids(2, 3)},
		{"date=gt2026-03-10T10:00:00Z&date=le2026-04-10", ids(2, 3, 4)},
		{"date=2026-04-12T00:00Z", ids(5)},
		{"date=lt2026-03-10T09:00:00.000000001Z", ids(0)},
		{"date=2026-05", ids()},
		{"patient=nobody", ids()},
	} {
		got, _ := searchAudit(t, env, c.q)
		// Each search is itself an event, later than those searched.
		got = slices.DeleteFunc(got, func(id string) bool { n, _ := strconv.Atoi(id); return n >= len(specs) })
		if !cmp.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.q, got, c.want)
		}
	}
	// Paging: pages of two, in log order, with next links.
	all, pages := searchAudit(t, env, "date=ge2026-01-01&date=lt2026-05-01&_count=2")
	if !cmp.Equal(all, ids(0, 1, 2, 3, 4, 5)) || pages != 3 {
		t.Errorf("paged: %v in %d pages", all, pages)
	}
	for _, q := range []string{"date=ne2026", "date=2026-13", "action=X", "patient=a%20b", "entity=Observation", "_sort=date", "patient:missing=true", "_count=-1", "agent=a&agent=b"} {
		if w := raw(env.h, &admin, "GET", "/fhir/AuditEvent?"+q, nil); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "OperationOutcome") {
			t.Errorf("%s: %d %s", q, w.Code, w.Body)
		}
	}
	// Lenient handling ignores unknown parameters and says so.
	w := raw(env.h, &admin, "GET", "/fhir/AuditEvent?_sort=date&patient=p3", nil, "Prefer", "handling=lenient")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "ignored unknown or unsupported search parameters: _sort") || !strings.Contains(w.Body.String(), `"id":"4"`) {
		t.Errorf("lenient: %d %s", w.Code, w.Body)
	}
	// A read returns the stored leaf with its id.
	w = raw(env.h, &admin, "GET", "/fhir/AuditEvent/2", nil)
	leaf, _ := env.api.Audit.Prover().Leaf(ctx, 2)
	if w.Code != 200 || w.Body.String() != `{"id":"2",`+string(leaf[1:]) {
		t.Errorf("read: %d %s", w.Code, w.Body)
	}
	// AuditEvent is not writable through a transaction either.
	tx := bundleOf("transaction", ent("", "POST", "AuditEvent", map[string]any{"resourceType": "AuditEvent"}))
	if w := raw(env.h, &admin, "POST", "/fhir", tx); w.Code != http.StatusBadRequest {
		t.Errorf("transaction writing an AuditEvent: %d %s", w.Code, w.Body)
	}
	for _, p := range []string{"/fhir/AuditEvent/_history", "/fhir/AuditEvent/2/_history", "/fhir/AuditEvent/2/_history/1"} {
		if w := raw(env.h, &admin, "GET", p, nil); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "no history") {
			t.Errorf("GET %s: %d %s", p, w.Code, w.Body)
		}
	}
}

// TestDisclosures: the accounting lists the successful releases of the
// patient's data for purposes other than treatment, payment and
// operations, to others than the patient, within six years; the printable
// report says the same.
func TestDisclosures(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	now := time.Now().UTC()
	type spec struct {
		user, role, purpose, inter, outcome string
		allowed                             bool
		age                                 time.Duration
		counts                              bool
	}
	specs := []spec{
		{"dr-a", "physician", "TREAT", "read", "0", true, time.Hour, false},                 // treatment
		{"bill", "billing", "HPAYMT", "search-type", "0", true, time.Hour, false},           // payment
		{"res", "researcher", "HRESCH", "search-type", "0", true, 2 * time.Hour, true},      // research
		{"lawyer", "privacy-officer", "HLEGAL", "read", "0", true, 3 * time.Hour, true},     // legal
		{"res", "researcher", "HRESCH", "read", "4", false, time.Hour, false},               // denied: nothing released
		{"p1", "patient", "PATRQT", "everything", "0", true, time.Hour, false},              // to the patient
		{"ph", "public-health", "PUBHLTH", "export", "0", true, 24 * time.Hour, true},       // public health export
		{"res", "researcher", "HRESCH", "update", "0", true, time.Hour, false},              // a write, not a release
		{"old", "researcher", "HRESCH", "read", "0", true, 7 * 365 * 24 * time.Hour, false}, // over six years ago
	}
	var want []string
	for _, s := range specs {
		e := &audit.Event{Time: now.Add(-s.age), Interaction: s.inter, Action: "R", Outcome: s.outcome, UserID: s.user, Roles: []string{s.role},
			Purpose: s.purpose, Patients: []string{"p1"}, Entities: []string{"Observation/o1/_history/1", "Observation/o2/_history/1", "Patient/p1/_history/1"}, Allowed: s.allowed}
		if s.user == "ph" {
			e.ClientID = "state-registry"
		}
		if err := env.api.Audit.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
		if s.counts {
			want = append(want, s.user+"/"+s.purpose)
		}
	}
	w := raw(env.h, &admin, "GET", "/fhir/Patient/p1/$disclosures", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	sc := bufio.NewScanner(w.Body)
	sc.Scan()
	var hdr disclosureHeader
	if err := json.Unmarshal(sc.Bytes(), &hdr); err != nil {
		t.Fatal(err)
	}
	var got []string
	var lines []disclosure
	for sc.Scan() {
		var d disclosure
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		got = append(got, d.Recipient+"/"+d.Purpose)
		lines = append(lines, d)
	}
	if !cmp.Equal(got, want) || hdr.Disclosures != len(want) || hdr.Patient != "p1" {
		t.Fatalf("disclosures %v (header %+v), want %v", got, hdr, want)
	}
	if d := lines[0]; d.Description != "search-type of Observation, Patient (3 resources)" || d.Roles[0] != "researcher" || d.Index != 2 {
		t.Errorf("line %+v", d)
	}
	if d := lines[2]; d.Client != "state-registry" {
		t.Errorf("export line %+v", d)
	}
	txt := raw(env.h, &admin, "GET", "/fhir/Patient/p1/$disclosures?_format=text", nil)
	body := txt.Body.String()
	for _, s := range []string{"ACCOUNTING OF DISCLOSURES", "Patient:  p1", "Recipient:   res (researcher)", "HRESCH (research)",
		"via application state-registry", "HLEGAL (legal)", "Audit record: AuditEvent/3", "3 disclosure(s)."} {
		if !strings.Contains(body, s) {
			t.Errorf("text report lacks %q:\n%s", s, body)
		}
	}
	if txt.Code != 200 || !strings.HasPrefix(txt.Header().Get("Content-Type"), "text/plain") || strings.Contains(body, "dr-a") || strings.Contains(body, "old") {
		t.Errorf("text report %d %s:\n%s", txt.Code, txt.Header().Get("Content-Type"), body)
	}
}

// TestAuditEventCapability: the CapabilityStatement offers AuditEvent
// read and search with the parameters the search accepts, nothing more.
func TestAuditEventCapability(t *testing.T) {
	env := newTestEnv(t)
	w := raw(env.h, &admin, "GET", "/fhir/metadata", nil)
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type        string
				Interaction []struct{ Code string }
				SearchParam []struct{ Name string }
			}
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &cs); err != nil || len(cs.Rest) != 1 {
		t.Fatalf("%v %s", err, w.Body)
	}
	for _, r := range cs.Rest[0].Resource {
		if r.Type != "AuditEvent" {
			continue
		}
		var inter, params []string
		for _, i := range r.Interaction {
			inter = append(inter, i.Code)
		}
		for _, p := range r.SearchParam {
			params = append(params, p.Name)
			if _, err := parseAuditQuery(map[string][]string{p.Name: {"x"}}, false); err != nil && strings.Contains(err.Error(), "unknown") {
				t.Errorf("claimed parameter %s is refused", p.Name)
			}
		}
		if !cmp.Equal(inter, []string{"read", "search-type"}) || len(params) != 7 {
			t.Errorf("AuditEvent: interactions %v, parameters %v", inter, params)
		}
		return
	}
	t.Error("no AuditEvent in the CapabilityStatement")
}
