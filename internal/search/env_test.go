package search

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/testdb"
)

const testBase = "https://phivault.test/fhir"

// env is the real stack: the store testdb chooses (SQLite unless
// PHIVAULT_TEST_DB=postgres), file KEK, barrier, records, this
// engine and the FHIR API.
type env struct {
	t   testing.TB
	db  store.Backend
	b   *barrier.Barrier
	eng *Engine
	rec *records.Store
	h   http.Handler
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	db := testdb.Open(t)
	keyPath := filepath.Join(dir, "kek.json")
	if err := keys.CreateFile(keyPath, nil); err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenFile(keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := barrier.Open(ctx, kek, db, 10000)
	if err != nil {
		t.Fatal(err)
	}
	eng := New(b)
	eng.now = func() time.Time { return time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC) }
	rec := records.New(db, b, eng, "test")
	eng.SetRecords(rec)
	api := fhirapi.New(fhirapi.Config{Records: rec, Search: eng, Policy: policy.Bootstrap{},
		Audit: audit.NewLog(db, 5*time.Second), Base: testBase, Version: "test"})
	return &env{t: t, db: db, b: b, eng: eng, rec: rec, h: api.Handler()}
}

// load stores resources (JSON objects with resourceType and id).
func (e *env) load(res ...map[string]any) {
	e.t.Helper()
	for start := 0; start < len(res); start += 200 {
		var ops []records.Op
		for _, r := range res[start:min(start+200, len(res))] {
			raw, _ := json.Marshal(r)
			m, err := parseJSON(raw)
			if err != nil {
				e.t.Fatal(err)
			}
			ops = append(ops, records.Op{Type: m["resourceType"].(string), ID: m["id"].(string), Resource: m})
		}
		if _, err := e.rec.Commit(context.Background(), ops, nil); err != nil {
			e.t.Fatal(err)
		}
	}
}

var admin = policy.Principal{UserID: "admin", Roles: []string{"administrator"}, Method: "test"}

// do sends a request and decodes the JSON answer.
func (e *env) do(method, path, body string, hdr ...string) (int, map[string]any) {
	e.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r = r.WithContext(policy.WithPrincipal(r.Context(), admin))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		e.t.Fatalf("%s %s: not JSON (%d): %s", method, path, w.Code, w.Body.String())
	}
	return w.Code, out
}

// bundle is a decoded searchset.
type bundle struct {
	status   int
	total    int
	hasTotal bool
	matches  []string // Type/id in order
	includes []string
	next     string
	prev     string
	outcome  bool
	raw      map[string]any
}

func (e *env) get(path string, hdr ...string) bundle {
	e.t.Helper()
	return e.decode(e.do("GET", "/fhir/"+strings.ReplaceAll(path, " ", "%20"), "", hdr...))
}

func (e *env) decode(status int, m map[string]any) bundle {
	b := bundle{status: status, raw: m}
	if n, ok := m["total"].(float64); ok {
		b.total, b.hasTotal = int(n), true
	}
	entries, _ := m["entry"].([]any)
	for _, x := range entries {
		en := x.(map[string]any)
		res := en["resource"].(map[string]any)
		key := fmt.Sprint(res["resourceType"], "/", res["id"])
		switch en["search"].(map[string]any)["mode"] {
		case "match":
			b.matches = append(b.matches, key)
		case "include":
			b.includes = append(b.includes, key)
		case "outcome":
			b.outcome = true
		}
	}
	links, _ := m["link"].([]any)
	for _, x := range links {
		l := x.(map[string]any)
		u, _ := l["url"].(string)
		switch l["relation"] {
		case "next":
			b.next = strings.TrimPrefix(u, testBase+"/")
		case "previous":
			b.prev = strings.TrimPrefix(u, testBase+"/")
		}
	}
	return b
}

// walk follows next links from path and returns every match in order.
func (e *env) walk(path string) []string {
	e.t.Helper()
	var out []string
	for i := 0; path != ""; i++ {
		b := e.get(path)
		if b.status != 200 {
			e.t.Fatalf("GET %s: %d %v", path, b.status, b.raw)
		}
		out = append(out, b.matches...)
		path = b.next
		if i > 10000 {
			e.t.Fatal("too many pages")
		}
	}
	return out
}

// sorted returns a sorted copy.
func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func qs(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}
