package fhirapi

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// faultBackend wraps a backend: with failAudit set, every transaction
// that appends an audit leaf fails; with delay set, every Update waits
// that long (or until its context ends) before it starts.
type faultBackend struct {
	store.Backend
	failAudit atomic.Bool
	delay     atomic.Int64 // nanoseconds
}

var errInjected = errors.New("injected audit store failure")

func (f *faultBackend) Update(ctx context.Context, fn func(store.Writer) error) error {
	if d := time.Duration(f.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return f.Backend.Update(ctx, func(w store.Writer) error {
		return fn(faultWriter{Writer: w, f: f})
	})
}

type faultWriter struct {
	store.Writer
	f *faultBackend
}

func (w faultWriter) AppendAudit(leaf []byte) (int64, error) {
	if w.f.failAudit.Load() {
		return 0, errInjected
	}
	return w.Writer.AppendAudit(leaf)
}

// secretFamily is a name that must never appear in a response that failed.
const secretFamily = "Quixotefamily"

// failProbe is one request that must fail closed.
type failProbe struct {
	method, path string
	body         any
	hdr          []string
}

// failProbes returns reads and writes of every kind against patient p1
// (which exists, with an Observation obs1).
func failProbes() (reads, writes []failProbe) {
	named := func(id string) obj {
		p := patient(id, "")
		p["name"] = []any{obj{"family": secretFamily}}
		return p
	}
	reads = []failProbe{
		{"GET", "/fhir/Patient/p1", nil, nil},
		{"GET", "/fhir/Patient/p1/_history/1", nil, nil},
		{"GET", "/fhir/Patient/p1/_history", nil, nil},
		{"GET", "/fhir/Patient/_history", nil, nil},
		{"GET", "/fhir/_history", nil, nil},
		{"GET", "/fhir/Patient?identifier=urn:sys|id1", nil, nil},
		{"POST", "/fhir/Patient/_search", "identifier=urn%3Asys%7Cid1", []string{"Content-Type", "application/x-www-form-urlencoded"}},
		{"POST", "/fhir", bundleOf("batch", ent("", "GET", "Patient/p1", nil)), nil},
		{"GET", "/fhir/metadata", nil, nil},
		{"GET", "/fhir/Patient/nobody", nil, nil}, // a 404 must be audited too
	}
	writes = []failProbe{
		{"POST", "/fhir/Patient", named(""), nil},
		{"PUT", "/fhir/Patient/p1", named("p1"), nil},
		{"PUT", "/fhir/Patient/new1", named("new1"), nil},
		{"PATCH", "/fhir/Patient/p1", `[{"op":"add","path":"/active","value":true}]`, []string{"Content-Type", "application/json-patch+json"}},
		{"DELETE", "/fhir/Observation/obs1", nil, nil},
		{"PUT", "/fhir/Patient?identifier=urn:sys|id1", named(""), nil},
		{"DELETE", "/fhir/Patient?identifier=urn:sys|id1", nil, nil},
		{"POST", "/fhir", bundleOf("transaction", ent(uuidA, "POST", "Patient", named(""))), nil},
		{"POST", "/fhir", bundleOf("batch", ent("", "POST", "Patient", named(""))), nil},
	}
	return reads, writes
}

// seed stores p1 (identifier id1, family secretFamily) and obs1.
func seed(t *testing.T, env *testEnv) {
	t.Helper()
	p := patient("p1", "id1")
	p["name"] = []any{obj{"family": secretFamily}}
	if st, b := env.do("PUT", "/fhir/Patient/p1", p); st != 201 {
		t.Fatalf("seed: %d %v", st, b)
	}
	o := observation("Patient/p1")
	o["id"] = "obs1"
	if st, b := env.do("PUT", "/fhir/Observation/obs1", o); st != 201 {
		t.Fatalf("seed: %d %v", st, b)
	}
}

// expectFailClosed sends every probe and requires 503, no patient data in
// the body, and no stored version or audit leaf added.
func expectFailClosed(t *testing.T, env *testEnv, probes []failProbe, ctx func() (context.Context, context.CancelFunc)) {
	t.Helper()
	for _, p := range probes {
		versions, _ := env.counts()
		r := rawCtx(env.h, ctx, p.method, p.path, p.body, p.hdr...)
		if r.Code != http.StatusServiceUnavailable {
			t.Errorf("%s %s: status %d, want 503: %s", p.method, p.path, r.Code, r.Body)
		}
		if b := r.Body.String(); strings.Contains(b, secretFamily) || strings.Contains(b, `"resourceType":"Patient"`) || strings.Contains(b, `"resourceType":"Bundle"`) {
			t.Errorf("%s %s: a failed request returned data: %s", p.method, p.path, b)
		}
		if v, _ := env.counts(); v != versions {
			t.Errorf("%s %s: %d versions stored without their audit event", p.method, p.path, v-versions)
		}
	}
}

// expectRecovered requires every probe to succeed again (2xx or the 404).
func expectRecovered(t *testing.T, env *testEnv) {
	t.Helper()
	reads, writes := failProbes()
	for _, p := range append(reads, writes...) {
		r := rawCtx(env.h, nil, p.method, p.path, p.body, p.hdr...)
		if r.Code >= 300 && !(r.Code == 404 && strings.Contains(p.path, "nobody")) {
			t.Errorf("after recovery %s %s: %d %s", p.method, p.path, r.Code, r.Body)
		}
	}
	everyVersionAudited(t, env)
}

// everyVersionAudited requires each stored version to be named by an
// audit event: no write landed without its event.
func everyVersionAudited(t *testing.T, env *testEnv) {
	t.Helper()
	named := map[string]bool{}
	for _, l := range leaves(t, env.db, 0) {
		for _, e := range summarize(t, l).Entities {
			named[e] = true
		}
	}
	err := env.db.View(context.Background(), func(r store.Reader) error {
		vs, err := r.History(store.HistoryQuery{})
		for _, v := range vs {
			if ref := v.Type + "/" + v.ID + "/_history/" + itoa(v.VID); !named[ref] {
				t.Errorf("%s is stored but no audit event names it", ref)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFailClosedAuditStoreError(t *testing.T) {
	db, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fb := &faultBackend{Backend: db}
	env := newTestEnvOn(t, fb)
	seed(t, env)
	fb.failAudit.Store(true)
	reads, writes := failProbes()
	expectFailClosed(t, env, append(reads, writes...), nil)
	fb.failAudit.Store(false)
	expectRecovered(t, env)
}

// TestFailClosedSlowStore: a store slower than the audit timeout fails
// reads with 503 (the audit append gives up); writes, whose event commits
// with the data, fail with 503 when the request's own deadline passes.
func TestFailClosedSlowStore(t *testing.T) {
	db, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fb := &faultBackend{Backend: db}
	env := newTestEnvOn(t, fb)
	seed(t, env)
	env.api.Audit = audit.NewLog(fb, 100*time.Millisecond)
	fb.delay.Store(int64(400 * time.Millisecond))
	reads, writes := failProbes()
	start := time.Now()
	expectFailClosed(t, env, reads, nil) // no request deadline: the audit timeout alone
	if d := time.Since(start); d > time.Duration(len(reads))*time.Second {
		t.Errorf("%d reads took %v: the audit timeout did not bound them", len(reads), d)
	}
	expectFailClosed(t, env, writes, func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 200*time.Millisecond)
	})
	fb.delay.Store(0)
	expectRecovered(t, env)
}

// TestFailClosedDiskFull runs the store on a 2 MiB tmpfs made by the test,
// fills it, requires every request to fail closed, then frees space and
// requires the server to recover with every version audited.
func TestFailClosedDiskFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		msg := "cannot mount a small tmpfs (needs root): " + strings.TrimSpace(string(out))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	db, err := sqlite.Open(filepath.Join(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	env := newTestEnvOn(t, db)
	seed(t, env)
	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(dir, &sfs); err != nil || sfs.Bavail*uint64(sfs.Bsize) > 64<<10 {
		t.Fatalf("the filesystem is not full: %d bytes free (%v)", sfs.Bavail*uint64(sfs.Bsize), err)
	}
	reads, writes := failProbes()
	expectFailClosed(t, env, append(reads, writes...), nil)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	expectRecovered(t, env)
}

// fill writes path until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Sync()
}
