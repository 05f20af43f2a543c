package fhirapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
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

// exportFamily is a patient name that must never reach disk in plaintext.
const exportFamily = "Zebulonexport"

// exportPolicy: administrators may do everything; "limited" may export
// and read only what is outside any compartment or in p1's; anyone else
// is denied.
type exportPolicy struct{}

func (exportPolicy) Decide(_ context.Context, r policy.Request) policy.Decision {
	switch {
	case r.Principal.Has("administrator"):
		return policy.Decision{Allow: true, Policies: []string{"test-admin"}}
	case r.Principal.UserID == "limited" && (r.Patient == "" || r.Patient == "p1"):
		return policy.Decision{Allow: true, Policies: []string{"test-limited"}}
	}
	return policy.Decision{Policies: []string{"test-deny"}, Reason: "not allowed"}
}

var (
	exportAdmin   = policy.Principal{UserID: "admin", SessionID: "tok-a", Roles: []string{"administrator"}, Method: "test"}
	exportLimited = policy.Principal{UserID: "limited", SessionID: "tok-l", Roles: []string{"researcher"}, Method: "test"}
)

// exportEnv is an API with bulk export over SQLite, a file KEK, the
// barrier, records and the audit log; fb can fail audit appends.
type exportEnv struct {
	t   testing.TB
	dir string // the store's directory
	fb  *faultBackend
	rec *records.Store
	api *API
	h   http.Handler
}

func newExportEnv(t testing.TB, ttl time.Duration) *exportEnv {
	t.Helper()
	return newExportEnvWith(t, ExportConfig{TTL: ttl}, exportPolicy{})
}

// newExportEnvWith is newExportEnv with export settings (its Barrier is
// filled in) and a policy.
func newExportEnvWith(t testing.TB, xc ExportConfig, pol policy.Decider) *exportEnv {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	db, err := sqlite.Open(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	fb := &faultBackend{Backend: db}
	keyPath := filepath.Join(t.TempDir(), "kek.json")
	if err := keys.CreateFile(keyPath, nil); err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenFile(keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := barrier.Open(ctx, kek, fb, 1000)
	if err != nil {
		t.Fatal(err)
	}
	ix := &fakeIndex{b: b}
	rec := records.New(fb, b, ix, "test")
	xc.Barrier = b
	api := New(Config{
		Records: rec, Search: &fakeSearch{ix: ix, rec: rec}, Policy: pol,
		Audit: audit.NewLog(fb, 5*time.Second), Base: testBase, Version: "test",
		Export: xc,
	})
	t.Cleanup(func() { api.Close(); db.Close() })
	env := &exportEnv{t: t, dir: dir, fb: fb, rec: rec, api: api, h: api.Handler()}
	env.load(
		`{"resourceType":"Patient","id":"p1","name":[{"family":"`+exportFamily+`"}]}`,
		`{"resourceType":"Patient","id":"p2","name":[{"family":"Beta"}]}`,
		`{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"a"},"subject":{"reference":"Patient/p1"}}`,
		`{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"b"},"subject":{"reference":"Patient/p2"}}`,
		`{"resourceType":"Practitioner","id":"pr1"}`,
		`{"resourceType":"Group","id":"g1","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/p2"}}]}`,
	)
	return env
}

func (env *exportEnv) load(docs ...string) {
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

var async = []string{"Prefer", "respond-async", "Accept", "application/fhir+json"}

// kickoff starts an export and returns the status path (under /fhir).
func (env *exportEnv) kickoff(who policy.Principal, path string) string {
	env.t.Helper()
	w := raw(env.h, &who, "GET", path, nil, async...)
	loc := w.Header().Get("Content-Location")
	if w.Code != http.StatusAccepted || !strings.HasPrefix(loc, testBase+"/$export-poll-status?_jobId=") {
		env.t.Fatalf("kick-off %s: %d %q %s", path, w.Code, loc, w.Body)
	}
	return "/fhir" + strings.TrimPrefix(loc, testBase)
}

// manifest is the completion manifest.
type manifest struct {
	TransactionTime     string
	Request             string
	RequiresAccessToken bool
	Output, Error       []struct {
		Type, URL string
		Count     int
	}
}

// wait polls status until the job completes and returns the manifest.
func (env *exportEnv) wait(who policy.Principal, status string) manifest {
	env.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w := raw(env.h, &who, "GET", status, nil)
		switch {
		case w.Code == http.StatusAccepted && w.Header().Get("X-Progress") != "" && time.Now().Before(deadline):
			time.Sleep(5 * time.Millisecond)
			continue
		case w.Code != http.StatusOK:
			env.t.Fatalf("status: %d %s", w.Code, w.Body)
		}
		var m manifest
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			env.t.Fatal(err)
		}
		return m
	}
}

// download fetches every output and error file of m and returns the
// Type/id of each line (and the OperationOutcome diagnostics).
func (env *exportEnv) download(who policy.Principal, m manifest) (got []string, outcomes []string) {
	env.t.Helper()
	for _, f := range append(m.Output, m.Error...) {
		w := raw(env.h, &who, "GET", "/fhir"+strings.TrimPrefix(f.URL, testBase), nil)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/fhir+ndjson" {
			env.t.Fatalf("file %s: %d %s", f.URL, w.Code, w.Body)
		}
		sc := bufio.NewScanner(bytes.NewReader(w.Body.Bytes()))
		for sc.Scan() {
			var r struct {
				ResourceType, ID string
				Issue            []struct{ Diagnostics string }
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				env.t.Fatalf("file %s: a line is not JSON: %v", f.URL, err)
			}
			if r.ResourceType != f.Type {
				env.t.Errorf("file of %s holds a %s", f.Type, r.ResourceType)
			}
			if r.ResourceType == "OperationOutcome" {
				outcomes = append(outcomes, r.Issue[0].Diagnostics)
				continue
			}
			got = append(got, r.ResourceType+"/"+r.ID)
		}
	}
	slices.Sort(got)
	return got, outcomes
}

// exportMeta returns the store's export metadata keys.
func (env *exportEnv) exportMeta() []string {
	env.t.Helper()
	var keys []string
	err := env.fb.View(context.Background(), func(r store.Reader) error {
		for _, p := range []string{metaExport, metaExportJob} {
			kvs, err := r.MetaPrefix(p)
			if err != nil {
				return err
			}
			for _, kv := range kvs {
				keys = append(keys, kv.Key)
			}
		}
		return nil
	})
	if err != nil {
		env.t.Fatal(err)
	}
	return keys
}
