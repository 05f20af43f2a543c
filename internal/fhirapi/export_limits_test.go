package fhirapi

// Export limits: bounded workers, per-user caps, the decision asked again
// at download, and the sweep of output a stopped process left behind.

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/store"
)

// gatePolicy is exportPolicy, with every per-resource export decision held
// until gate is closed; it counts the decisions waiting at once.
type gatePolicy struct {
	exportPolicy
	gate         chan struct{}
	inside, most atomic.Int32
}

func (g *gatePolicy) Decide(ctx context.Context, r policy.Request) policy.Decision {
	if r.Action == policy.Export && r.ID != "" {
		n := g.inside.Add(1)
		for m := g.most.Load(); n > m && !g.most.CompareAndSwap(m, n); m = g.most.Load() {
		}
		<-g.gate
		g.inside.Add(-1)
	}
	return g.exportPolicy.Decide(ctx, r)
}

// TestExportBounded: with one worker, one job runs and the others wait
// (202, X-Progress: waiting) until it is done; then they all finish.
func TestExportBounded(t *testing.T) {
	g := &gatePolicy{gate: make(chan struct{})}
	env := newExportEnvWith(t, ExportConfig{TTL: time.Hour, Workers: 1}, g)
	var once sync.Once
	release := func() { once.Do(func() { close(g.gate) }) }
	t.Cleanup(release) // runs before the env's cleanup closes the API
	var status []string
	for range 3 {
		status = append(status, env.kickoff(exportAdmin, "/fhir/Patient/$export?_type=Patient"))
	}
	for deadline := time.Now().Add(5 * time.Second); g.inside.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	waiting := 0
	for _, s := range status {
		w := raw(env.h, &exportAdmin, "GET", s, nil)
		if w.Code != http.StatusAccepted {
			t.Fatalf("status while held: %d", w.Code)
		}
		if w.Header().Get("X-Progress") == "waiting" {
			waiting++
		}
	}
	if n := g.inside.Load(); n != 1 || waiting != 2 {
		t.Errorf("%d decisions held at once, %d jobs waiting; want 1 and 2", n, waiting)
	}
	release()
	for _, s := range status {
		if got, _ := env.download(exportAdmin, env.wait(exportAdmin, s)); len(got) != 2 {
			t.Errorf("exported %v", got)
		}
	}
	if g.most.Load() != 1 {
		t.Errorf("%d jobs decided at once with one worker", g.most.Load())
	}
}

// TestExportUserCap: one user holds at most exportUserJobs jobs (429
// beyond, nothing started); others are not affected; cancelling frees one.
func TestExportUserCap(t *testing.T) {
	env := newExportEnv(t, time.Hour)
	var first string
	for i := range exportUserJobs {
		s := env.kickoff(exportLimited, "/fhir/$export?_type=Practitioner")
		if i == 0 {
			first = s
		}
	}
	if w := raw(env.h, &exportLimited, "GET", "/fhir/$export", nil, async...); w.Code != http.StatusTooManyRequests || w.Header().Get("Content-Location") != "" {
		t.Errorf("kick-off over the cap: %d %s", w.Code, w.Body)
	}
	env.kickoff(exportAdmin, "/fhir/$export?_type=Practitioner")
	env.wait(exportLimited, first)
	if w := raw(env.h, &exportLimited, "DELETE", first, nil); w.Code != http.StatusAccepted {
		t.Fatalf("cancel: %d", w.Code)
	}
	env.kickoff(exportLimited, "/fhir/$export?_type=Practitioner")
}

// revocable is exportPolicy until revoked, then denies everything.
type revocable struct {
	exportPolicy
	revoked atomic.Bool
}

func (r *revocable) Decide(ctx context.Context, q policy.Request) policy.Decision {
	if r.revoked.Load() {
		return policy.Decision{Policies: []string{"test-revoked"}, Reason: "revoked"}
	}
	return r.exportPolicy.Decide(ctx, q)
}

// TestExportRecheckAtDownload: a caller who lost the right to export
// after the kick-off gets 403 for the files (audited), not the data.
func TestExportRecheckAtDownload(t *testing.T) {
	pol := &revocable{}
	env := newExportEnvWith(t, ExportConfig{TTL: time.Hour}, pol)
	m := env.wait(exportLimited, env.kickoff(exportLimited, "/fhir/Patient/$export"))
	pol.revoked.Store(true)
	before := auditSize(t, env.fb)
	w := raw(env.h, &exportLimited, "GET", "/fhir"+strings.TrimPrefix(m.Output[0].URL, testBase), nil)
	if w.Code != http.StatusForbidden || strings.Contains(w.Body.String(), exportFamily) {
		t.Errorf("download after revocation: %d %s", w.Code, w.Body)
	}
	if ls := leaves(t, env.fb, before); len(ls) != 1 || summarize(t, ls[0]).Decision != "deny" || len(summarize(t, ls[0]).Entities) != 0 {
		t.Errorf("events: %s", ls)
	}
}

// TestExportSweep: output a stopped process left behind is removed at the
// first kick-off once its deadline passed; a live job's output is kept.
func TestExportSweep(t *testing.T) {
	env := newExportEnv(t, time.Hour)
	past, future := strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10), strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	err := env.fb.Update(context.Background(), func(w store.Writer) error {
		for k, v := range map[string]string{metaExportJob + "old": past, metaExport + "old/0": "x", metaExportJob + "live": future, metaExport + "live/0": "y"} {
			if err := w.SetMeta(k, []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	env.wait(exportAdmin, env.kickoff(exportAdmin, "/fhir/$export?_type=Practitioner"))
	var left []string
	for _, k := range env.exportMeta() {
		if strings.Contains(k, "old") || strings.Contains(k, "live") {
			left = append(left, k)
		}
	}
	if diff := cmp.Diff([]string{metaExport + "live/0", metaExportJob + "live"}, left); diff != "" {
		t.Errorf("after the sweep (-want +got):\n%s", diff)
	}
}
