package fhirapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// testBase is the public base URL of the API under test.
const testBase = "https://phivault.test/fhir"

// testEnv is an API over real parts (SQLite store, file KEK, barrier,
// audit log, bootstrap policy) with test doubles for indexing and search.
type testEnv struct {
	t   testing.TB
	api *API
	db  store.Backend
	h   http.Handler
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	db, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return newTestEnvOn(t, db)
}

// newTestEnvOn is newTestEnv over the backend db.
func newTestEnvOn(t testing.TB, db store.Backend) *testEnv {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
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
	ix := &fakeIndex{b: b}
	rec := records.New(db, b, ix, "test")
	api := New(Config{
		Records: rec, Search: &fakeSearch{ix: ix, rec: rec}, Policy: policy.Bootstrap{},
		Audit: audit.NewLog(db, 5*time.Second), Base: testBase, Version: "test",
	})
	return &testEnv{t: t, api: api, db: db, h: api.Handler()}
}

// fakeIndex is a test double for the search index: it indexes only
// identifier (system|value and value alone) and puts a resource in the
// compartment of the Patient it is, or that its subject or patient names.
type fakeIndex struct{ b *barrier.Barrier }

func (ix *fakeIndex) token(typ, v string) store.Token { return ix.b.Token("test-identifier", typ, v) }

func (ix *fakeIndex) Index(res map[string]any) ([]store.Token, string, error) {
	typ, _ := res["resourceType"].(string)
	var toks []store.Token
	ids, _ := res["identifier"].([]any)
	for _, v := range ids {
		m, _ := v.(map[string]any)
		sys, _ := m["system"].(string)
		val, _ := m["value"].(string)
		toks = append(toks, ix.token(typ, sys+"|"+val), ix.token(typ, val))
	}
	if typ == "Patient" {
		id, _ := res["id"].(string)
		return toks, id, nil
	}
	for _, k := range []string{"subject", "patient"} {
		m, _ := res[k].(map[string]any)
		ref, _ := m["reference"].(string)
		if id, ok := strings.CutPrefix(ref, "Patient/"); ok {
			return toks, id, nil
		}
	}
	return toks, "", nil
}

// fakeSearch is a test double Searcher that answers identifier=[sys|]val
// through the fake index, and nothing else.
type fakeSearch struct {
	ix  *fakeIndex
	rec *records.Store
}

func (s *fakeSearch) Find(ctx context.Context, typ string, q url.Values, limit int) ([]string, *store.MatchQuery, error) {
	mq := store.MatchQuery{Type: typ}
	for k, vs := range q {
		switch k {
		case "identifier":
			for _, v := range vs {
				mq.All = append(mq.All, []store.Token{s.ix.token(typ, v)})
			}
		case "_count", "_elements", "_summary":
		default:
			return nil, nil, errorf(http.StatusBadRequest, "not-supported", "unknown search parameter")
		}
	}
	check := mq
	mq.Limit = limit
	ids, err := s.rec.Match(ctx, mq)
	return ids, &check, err
}

var admin = policy.Principal{UserID: "admin", Roles: []string{"administrator"}, Method: "test"}

// do sends a request as the administrator and returns the status and the
// decoded JSON body.
func (env *testEnv) do(method, path string, body any, hdr ...string) (int, map[string]any) {
	env.t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			env.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	r := httptest.NewRequest(method, path, rd)
	r = r.WithContext(policy.WithPrincipal(r.Context(), admin))
	r.Header.Set("Content-Type", "application/fhir+json")
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	env.h.ServeHTTP(w, r)
	var out map[string]any
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			env.t.Fatalf("%s %s: response is not JSON: %v", method, path, err)
		}
	}
	return w.Code, out
}

// counts returns the number of stored versions and audit leaves.
func (env *testEnv) counts() (versions int, leaves int64) {
	env.t.Helper()
	err := env.db.View(context.Background(), func(r store.Reader) error {
		vs, err := r.History(store.HistoryQuery{})
		if err != nil {
			return err
		}
		versions = len(vs)
		leaves, err = r.AuditSize()
		return err
	})
	if err != nil {
		env.t.Fatal(err)
	}
	return versions, leaves
}

// lastAudit returns the newest audit event as JSON.
func (env *testEnv) lastAudit() map[string]any {
	env.t.Helper()
	var leaf []byte
	err := env.db.View(context.Background(), func(r store.Reader) error {
		n, err := r.AuditSize()
		if err != nil {
			return err
		}
		ls, err := r.AuditLeaves(n-1, n)
		if err == nil && len(ls) == 1 {
			leaf = ls[0]
		}
		return err
	})
	if err != nil {
		env.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(leaf, &m); err != nil {
		env.t.Fatal(err)
	}
	return m
}
