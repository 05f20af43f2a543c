package fhirapi_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/search"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

const base = "https://phivault.test/fhir"

// p1Only is the test policy: "the caller may read and change only patient
// p1's compartment". Searches are allowed (their results are then decided
// one by one). It records every request it decided, so tests can check
// what the API asked. The Cedar engine must pass the same tests.
type p1Only struct {
	mu   sync.Mutex
	seen []policy.Request
}

func (d *p1Only) Decide(_ context.Context, r policy.Request) policy.Decision {
	d.mu.Lock()
	d.seen = append(d.seen, r)
	d.mu.Unlock()
	if r.Action == policy.Search || r.Patient == "p1" {
		return policy.Decision{Allow: true, Policies: []string{"test-p1-only"}}
	}
	return policy.Decision{Policies: []string{"test-p1-only"}, Reason: "outside the caller's patients"}
}

func (d *p1Only) requests() []policy.Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]policy.Request(nil), d.seen...)
}

// authzEnv is the real FHIR API over SQLite, the barrier, records, the
// search engine and the audit log, deciding with p1Only.
type authzEnv struct {
	t      *testing.T
	rec    *records.Store
	eng    *search.Engine
	policy *p1Only
	api    *fhirapi.API
}

// newStack opens a SQLite store under a fresh file KEK and returns it
// with records and the search engine over it.
func newStack(t testing.TB) (*sqlite.Backend, *records.Store, *search.Engine) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	db, err := sqlite.Open(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	keyPath := filepath.Join(dir, "kek.json")
	if err := keys.CreateFile(keyPath, nil); err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenFile(keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := barrier.Open(ctx, kek, db, 1000)
	if err != nil {
		t.Fatal(err)
	}
	eng := search.New(b)
	rec := records.New(db, b, eng, "test")
	eng.SetRecords(rec)
	return db, rec, eng
}

func newAuthzEnv(t *testing.T) *authzEnv {
	t.Helper()
	db, rec, eng := newStack(t)
	pol := &p1Only{}
	api := fhirapi.New(fhirapi.Config{Records: rec, Search: eng, Policy: pol,
		Audit: audit.NewLog(db, 5*time.Second), Base: base, Version: "test"})
	env := &authzEnv{t: t, rec: rec, eng: eng, policy: pol, api: api}
	env.load(
		`{"resourceType":"Patient","id":"p1","name":[{"family":"Alpha"}]}`,
		`{"resourceType":"Patient","id":"p2","name":[{"family":"Beta"}]}`,
		obs("o1", "p1", "1111-1", `,"identifier":[{"system":"urn:lab","value":"L1"}]`),
		obs("o2", "p2", "9999-9", `,"identifier":[{"system":"urn:lab","value":"L2"}]`),
		obs("o3", "p2", "1111-1", ""),
		obs("o4", "p1", "2222-2", `,"performer":[{"reference":"Patient/p2"}]`),
		obs("o5", "p2", "9999-9", `,"performer":[{"reference":"Patient/p1"}],"hasMember":[{"reference":"Observation/o1"}]`),
		obs("o6", "p1", "3333-3", ""),
	)
	return env
}

// obs is an R4 Observation of subject about LOINC code.
func obs(id, subject, code, extra string) string {
	head := `{"resourceType":"Observation",`
	if id != "" {
		head += `"id":"` + id + `",`
	}
	return head + `"status":"final",` +
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],` +
		`"code":{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]},"subject":{"reference":"Patient/` + subject + `"}` + extra + `}`
}

func (env *authzEnv) load(docs ...string) {
	env.t.Helper()
	var ops []records.Op
	for _, d := range docs {
		var m map[string]any
		if err := json.Unmarshal([]byte(d), &m); err != nil {
			env.t.Fatalf("bad fixture: %v", err)
		}
		ops = append(ops, records.Op{Type: m["resourceType"].(string), ID: m["id"].(string), Resource: m})
	}
	if _, err := env.rec.Commit(context.Background(), ops, nil); err != nil {
		env.t.Fatal(err)
	}
}

// user is a clinician principal.
func user(id, session string) policy.Principal {
	return policy.Principal{UserID: id, SessionID: session, Roles: []string{"physician"}, Method: "test"}
}

var u1 = user("u1", "s1")

// answer is a decoded response.
type answer struct {
	status   int
	body     map[string]any
	matches  []string // Type/id of search matches or bundle entries
	includes []string
	total    float64 // -1 when absent
	next     string
}

// call sends a request as who through the API's handler.
func (env *authzEnv) call(who policy.Principal, method, path, body string, hdr ...string) answer {
	env.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r = r.WithContext(policy.WithPrincipal(r.Context(), who))
	r.Header.Set("Content-Type", "application/fhir+json")
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	env.api.Handler().ServeHTTP(w, r)
	a := answer{status: w.Code, total: -1}
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &a.body); err != nil {
			env.t.Fatalf("%s %s: not JSON (%d): %s", method, path, w.Code, w.Body.String())
		}
	}
	if t, ok := a.body["total"].(float64); ok {
		a.total = t
	}
	entries, _ := a.body["entry"].([]any)
	for _, e := range entries {
		m, _ := e.(map[string]any)
		res, _ := m["resource"].(map[string]any)
		ref, _ := res["resourceType"].(string)
		if id, _ := res["id"].(string); id != "" {
			ref += "/" + id
		}
		if s, _ := m["search"].(map[string]any); s != nil && s["mode"] == "include" {
			a.includes = append(a.includes, ref)
		} else {
			a.matches = append(a.matches, ref)
		}
	}
	links, _ := a.body["link"].([]any)
	for _, l := range links {
		m, _ := l.(map[string]any)
		if m["relation"] == "next" {
			a.next, _ = m["url"].(string)
			a.next = strings.TrimPrefix(a.next, base)
		}
	}
	return a
}

// exists reports whether typ/id is stored and current, and its version.
func (env *authzEnv) exists(typ, id string) (bool, int64) {
	env.t.Helper()
	e, err := env.rec.Read(context.Background(), typ, id)
	if err != nil {
		return false, 0
	}
	return true, e.VID
}

// findOnly hides the engine's paging and visibility, to test the API's
// own filtering over a plain Searcher.
type findOnly struct{ eng *search.Engine }

func (f findOnly) Find(ctx context.Context, typ string, q url.Values, limit int) ([]string, *store.MatchQuery, error) {
	return f.eng.Find(ctx, typ, q, limit)
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
