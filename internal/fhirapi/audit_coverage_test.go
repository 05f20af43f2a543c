package fhirapi

import (
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
)

// registeredRoutes returns every route pattern registered by the
// package's non-test code: the string literal passed first to a call of
// h, Handle or HandleFunc. A route added anywhere in the package shows up
// here, so the coverage test fails until it has a case.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) < 2 {
				return true
			}
			var fn string
			switch f := call.Fun.(type) {
			case *ast.Ident:
				fn = f.Name
			case *ast.SelectorExpr:
				fn = f.Sel.Name
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if (fn == "h" || fn == "Handle" || fn == "HandleFunc") && ok && lit.Kind == token.STRING {
				p, _ := strconv.Unquote(lit.Value)
				out = append(out, p)
			}
			return true
		})
	}
	slices.Sort(out)
	return out
}

// coverage runs requests against the API and checks the audit events each
// one leaves, remembering which route served it.
type coverage struct {
	t       *testing.T
	env     *testEnv
	mux     *http.ServeMux
	covered map[string]bool
}

var doctor = policy.Principal{UserID: "doc", Roles: []string{"physician"}, Method: "test"}

// ev is the expected event of a successful administrator request.
func ev(interaction, action string, patients []string, entities ...string) evSummary {
	slices.Sort(patients)
	slices.Sort(entities)
	return evSummary{Interaction: interaction, Action: action, Outcome: "0", User: "admin", Decision: "permit", Patients: patients, Entities: entities}
}

// failed is the expected event of a request that failed with a client error.
func failed(interaction, action string) evSummary {
	return evSummary{Interaction: interaction, Action: action, Outcome: "4", User: "admin", Decision: "permit"}
}

func ps(ids ...string) []string { return ids }

// do sends the request as who, requires status, and compares the events it
// appended (in any order) with want; a nil want means the caller checks
// them (ids not known in advance).
func (cv *coverage) do(who policy.Principal, method, path string, body any, status int, want []evSummary, hdr ...string) *httptest.ResponseRecorder {
	cv.t.Helper()
	probe := httptest.NewRequest(method, path, nil)
	_, pattern := cv.mux.Handler(probe)
	cv.covered[pattern] = true
	before := auditSize(cv.t, cv.env.db)
	w := raw(cv.env.h, &who, method, path, body, hdr...)
	if w.Code != status {
		cv.t.Fatalf("%s %s: status %d, want %d: %s", method, path, w.Code, status, w.Body)
	}
	if want == nil {
		return w
	}
	var got []evSummary
	for _, l := range leaves(cv.t, cv.env.db, before) {
		got = append(got, summarize(cv.t, l))
	}
	key := func(a, b evSummary) int {
		return strings.Compare(a.Interaction+strings.Join(a.Entities, ","), b.Interaction+strings.Join(b.Entities, ","))
	}
	slices.SortFunc(got, key)
	slices.SortFunc(want, key)
	if diff := cmp.Diff(want, got); diff != "" {
		cv.t.Errorf("%s %s (route %q): audit events (-want +got):\n%s", method, path, pattern, diff)
	}
	return w
}

func idOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	id, _ := m["id"].(string)
	return id
}

// TestAuditCoverage performs every interaction the API offers, success and
// failure, and requires exactly the expected audit events; every route the
// package registers must be exercised.
func TestAuditCoverage(t *testing.T) {
	env := newTestEnv(t)
	cv := &coverage{t: t, env: env, mux: env.h.(*http.ServeMux), covered: map[string]bool{}}
	adm := admin
	const jp = "application/json-patch+json"

	cv.do(adm, "GET", "/fhir/metadata", nil, 200, []evSummary{ev("capabilities", "R", nil)})

	// Writes.
	pid := idOf(t, cv.do(adm, "POST", "/fhir/Patient", patient("", "p1"), 201, nil))
	if pid == "" {
		t.Fatal("create returned no id")
	}
	// The create's event was not checked above (its id was unknown): check it now.
	if got := summarize(t, leaves(t, env.db, auditSize(t, env.db)-1)[0]); !cmp.Equal(got, ev("create", "C", ps(pid), "Patient/"+pid+"/_history/1")) {
		t.Errorf("create event = %+v", got)
	}
	w := cv.do(adm, "POST", "/fhir/Observation", observation("Patient/"+pid), 201, nil)
	oid := idOf(t, w)
	if got := summarize(t, leaves(t, env.db, auditSize(t, env.db)-1)[0]); !cmp.Equal(got, ev("create", "C", ps(pid), "Observation/"+oid+"/_history/1")) {
		t.Errorf("create event = %+v", got)
	}
	cv.do(adm, "GET", "/fhir/Patient/"+pid, nil, 200, []evSummary{ev("read", "R", ps(pid), "Patient/"+pid+"/_history/1")})
	cv.do(adm, "GET", "/fhir/Patient/"+pid+"/_history/1", nil, 200, []evSummary{ev("vread", "R", ps(pid), "Patient/"+pid+"/_history/1")})
	cv.do(adm, "PUT", "/fhir/Patient/"+pid, patient(pid, "p1"), 200, []evSummary{ev("update", "U", ps(pid), "Patient/"+pid+"/_history/2")})
	cv.do(adm, "PUT", "/fhir/Patient/p2", patient("p2", "p2"), 201, []evSummary{ev("update", "U", ps("p2"), "Patient/p2/_history/1")})
	cv.do(adm, "PATCH", "/fhir/Patient/"+pid, `[{"op":"add","path":"/active","value":true}]`, 200,
		[]evSummary{ev("patch", "U", ps(pid), "Patient/"+pid+"/_history/3")}, "Content-Type", jp)
	// Conditional create that matches: a read of the match.
	cv.do(adm, "POST", "/fhir/Patient", patient("", "p1"), 200, []evSummary{ev("read", "R", ps(pid), "Patient/"+pid+"/_history/3")},
		"If-None-Exist", "identifier=urn:sys|p1")
	w = cv.do(adm, "POST", "/fhir/Patient", patient("", "p3"), 201, nil, "If-None-Exist", "identifier=urn:sys|p3")
	p3 := idOf(t, w)
	if got := summarize(t, leaves(t, env.db, auditSize(t, env.db)-1)[0]); !cmp.Equal(got, ev("create", "C", ps(p3), "Patient/"+p3+"/_history/1")) {
		t.Errorf("conditional create event = %+v", got)
	}
	cv.do(adm, "PUT", "/fhir/Patient?identifier=urn:sys|p2", patient("", "p2"), 200, []evSummary{ev("update", "U", ps("p2"), "Patient/p2/_history/2")})

	// Reads of many.
	search := ev("search-type", "E", ps(pid), "Patient/"+pid+"/_history/3")
	search.Query = true
	cv.do(adm, "GET", "/fhir/Patient?identifier=urn:sys|p1", nil, 200, []evSummary{search})
	cv.do(adm, "POST", "/fhir/Patient/_search", "identifier=urn%3Asys%7Cp1", 200, []evSummary{search}, "Content-Type", "application/x-www-form-urlencoded")
	cv.do(adm, "GET", "/fhir/Patient/"+pid+"/_history", nil, 200, []evSummary{ev("history-instance", "R", ps(pid),
		"Patient/"+pid+"/_history/1", "Patient/"+pid+"/_history/2", "Patient/"+pid+"/_history/3")})
	// $everything (its compartment search is tested over the real engine
	// in everything_test.go; this test's searcher answers only identifier,
	// so the Patient alone is returned here).
	everything := ev("everything", "E", ps(pid), "Patient/"+pid+"/_history/3")
	everything.Query = true
	cv.do(adm, "GET", "/fhir/Patient/"+pid+"/$everything", nil, 200, []evSummary{everything})
	cv.do(adm, "POST", "/fhir/Patient/"+pid+"/$everything", "start=2020", 400, []evSummary{failed("everything", "E")}, "Content-Type", "application/x-www-form-urlencoded")
	cv.do(adm, "GET", "/fhir/Observation/_history", nil, 200, []evSummary{ev("history-type", "R", ps(pid), "Observation/"+oid+"/_history/1")})
	cv.do(adm, "GET", "/fhir/_history", nil, 200, []evSummary{ev("history-system", "R", ps(pid, "p2", p3),
		"Patient/"+pid+"/_history/1", "Patient/"+pid+"/_history/2", "Patient/"+pid+"/_history/3", "Observation/"+oid+"/_history/1",
		"Patient/p2/_history/1", "Patient/p2/_history/2", "Patient/"+p3+"/_history/1")})

	// Bundles: a batch leaves one event per entry plus its own (naming
	// nothing); a transaction leaves one event naming everything.
	before := auditSize(t, env.db)
	w = cv.do(adm, "POST", "/fhir", bundleOf("batch",
		ent("", "GET", "Patient/"+pid, nil),
		ent("", "POST", "Observation", observation("Patient/"+pid)),
		ent("", "GET", "Patient/missing", nil),
	), 200, nil)
	var resp struct {
		Entry []struct{ Response struct{ Location string } }
	}
	json.Unmarshal(w.Body.Bytes(), &resp)
	loc := resp.Entry[1].Response.Location
	batchEv := ev("batch", "E", nil)
	want := []evSummary{ev("read", "R", ps(pid), "Patient/"+pid+"/_history/3"), ev("create", "C", ps(pid), loc), failed("read", "R"), batchEv}
	var got []evSummary
	for _, l := range leaves(t, env.db, before) {
		got = append(got, summarize(t, l))
	}
	if len(got) != len(want) || !strings.HasPrefix(loc, "Observation/") || got[len(got)-1].Interaction != "batch" {
		t.Fatalf("batch: events %+v; location %q", got, loc)
	}
	for _, x := range want {
		if !slices.ContainsFunc(got, func(g evSummary) bool { return cmp.Equal(g, x) }) {
			t.Errorf("batch: no event %+v among %+v", x, got)
		}
	}
	before = auditSize(t, env.db)
	w = cv.do(adm, "POST", "/fhir/", bundleOf("transaction",
		ent(uuidA, "POST", "Patient", patient("", "p4")),
		ent(uuidB, "POST", "Observation", observation(uuidA)),
	), 200, nil)
	json.Unmarshal(w.Body.Bytes(), &resp)
	p4ref, o4ref := resp.Entry[0].Response.Location, resp.Entry[1].Response.Location
	p4 := strings.Split(p4ref, "/")[1]
	if got := summarize(t, leaves(t, env.db, before)[0]); !cmp.Equal(got, ev("transaction", "E", ps(p4), p4ref, o4ref)) || auditSize(t, env.db) != before+1 {
		t.Errorf("transaction event = %+v (%d events)", got, auditSize(t, env.db)-before)
	}

	// Deletes name the patient whose compartment the resource was in.
	cv.do(adm, "DELETE", "/fhir/Observation/"+oid, nil, 200, []evSummary{ev("delete", "D", ps(pid), "Observation/"+oid+"/_history/2")})
	cv.do(adm, "DELETE", "/fhir/Patient?identifier=urn:sys|p2", nil, 200, []evSummary{ev("delete", "D", ps("p2"), "Patient/p2/_history/3")})
	cv.do(adm, "DELETE", "/fhir/Patient?identifier=urn:sys|nobody", nil, 200, []evSummary{ev("delete", "D", nil)})

	// Failures: each audited, naming nothing that was not disclosed.
	cv.do(adm, "GET", "/fhir/Patient/nobody", nil, 404, []evSummary{failed("read", "R")})
	cv.do(adm, "GET", "/fhir/Observation/"+oid, nil, 410, []evSummary{failed("read", "R")})
	cv.do(adm, "GET", "/fhir/Patient/"+pid+"/_history/9", nil, 404, []evSummary{failed("vread", "R")})
	cv.do(adm, "POST", "/fhir/Patient", "{", 400, []evSummary{failed("create", "C")})
	cv.do(adm, "PUT", "/fhir/Patient/"+pid, patient(pid, "p1"), 412, []evSummary{failed("update", "U")}, "If-Match", `W/"1"`)
	cv.do(adm, "GET", "/fhir/Patient?bogus=1", nil, 400, []evSummary{func() evSummary { e := failed("search-type", "E"); e.Query = true; return e }()})
	cv.do(adm, "GET", "/fhir/Patient/"+pid+"/_history?_since=yesterday", nil, 400, []evSummary{failed("history-instance", "R")})
	cv.do(adm, "GET", "/fhir/Patient/"+pid+"/x/y/z", nil, 404, []evSummary{failed("unknown", "")})
	cv.do(adm, "PATCH", "/fhir/Patient", nil, 405, []evSummary{failed("unknown", "")})
	denied := func(interaction, action string, patients ...string) evSummary {
		// A denial names the patient whose record was asked for (so it
		// shows in their access report), never the resources.
		return evSummary{Interaction: interaction, Action: action, Outcome: "4", User: "doc", Decision: "deny", Patients: patients}
	}
	cv.do(doctor, "GET", "/fhir/Patient/"+pid, nil, 403, []evSummary{denied("read", "R", pid)})
	deniedSearch := denied("search-type", "E")
	deniedSearch.Query = true
	cv.do(doctor, "GET", "/fhir/Patient?identifier=urn:sys|p1", nil, 403, []evSummary{deniedSearch})
	cv.do(doctor, "DELETE", "/fhir/Patient/"+pid, nil, 403, []evSummary{denied("delete", "D", pid)})
	cv.do(doctor, "GET", "/fhir/_history", nil, 403, []evSummary{denied("history-system", "R")})
	cv.do(doctor, "PUT", "/fhir/Patient/"+pid, patient(pid, "p1"), 403, []evSummary{denied("update", "U", pid)})

	// Without a principal the API refuses (the server layer audits it, below).
	if w := raw(env.h, nil, "GET", "/fhir/Patient/"+pid, nil); w.Code != 401 || strings.Contains(w.Body.String(), "Test") {
		t.Errorf("no principal: %d %s", w.Code, w.Body)
	}

	auditCoverageExtra(t, cv)
	alertsCoverageExtra(t, cv)
	casesCoverageExtra(t, cv)
	exportCoverageExtra(t, cv)

	// Every registered route was exercised, and the parser sees the routes
	// the mux serves.
	routes := registeredRoutes(t)
	for _, r := range routes {
		if !cv.covered[r] {
			t.Errorf("route %q has no audit coverage case", r)
		}
	}
	for r := range cv.covered {
		if !slices.Contains(routes, r) {
			t.Errorf("route %q served a request but was not found in the source", r)
		}
	}
}

// TestAuditCoverageServer401: a request without valid credentials is
// refused by the server layer with 401 and leaves a login-failed event.
func TestAuditCoverageServer401(t *testing.T) {
	env := newTestEnv(t)
	h := server.Handler(server.Config{FHIR: env.h, Auth: rejectAll{}, Audit: env.api.Audit, Metrics: server.NewMetrics(), Log: slog.New(slog.DiscardHandler)})
	before := auditSize(t, env.db)
	w := raw(h, nil, "GET", "/fhir/Patient/x", nil, "Authorization", "Bearer wrong")
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("status %d", w.Code)
	}
	ls := leaves(t, env.db, before)
	want := evSummary{Interaction: "login-failed", Action: "E", Outcome: "4", Decision: "deny"}
	if len(ls) != 1 || !cmp.Equal(summarize(t, ls[0]), want) {
		t.Errorf("events after a 401: %d %s", len(ls), ls)
	}
}

type rejectAll struct{}

func (rejectAll) Check(string) (policy.Principal, error) { return policy.Principal{}, errors.New("no") }

// TestRegisteredRoutesParser guards the route parser itself: it must find
// the routes api.go registers.
func TestRegisteredRoutesParser(t *testing.T) {
	routes := registeredRoutes(t)
	src, err := os.ReadFile("api.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"GET /fhir/metadata", "GET /fhir/{type}/{id}", "/fhir/"} {
		if !slices.Contains(routes, r) || !strings.Contains(string(src), strconv.Quote(r)) {
			t.Errorf("parser missed %q (found %v)", r, routes)
		}
	}
}

// TestAuditDeleteNamesPatient: deleting a resource in a patient's
// compartment is an access to that patient's record; its event must name
// the patient, or the patient's access report misses it. It skips with a
// message while the known bug stands (records.Result of a delete carries
// no compartment and API.commit records r.Patient), and asserts once fixed.
func TestAuditDeleteNamesPatient(t *testing.T) {
	env := newTestEnv(t)
	env.do("PUT", "/fhir/Patient/p1", patient("p1", ""))
	oid := env.create(observation("Patient/p1"))
	if st, _ := env.do("DELETE", "/fhir/Observation/"+oid, nil); st != 200 {
		t.Fatal(st)
	}
	got := summarize(t, leaves(t, env.db, auditSize(t, env.db)-1)[0])
	if !cmp.Equal(got.Patients, []string{"p1"}) {
		t.Errorf("delete event patients = %v, want [p1]", got.Patients)
	}
}
