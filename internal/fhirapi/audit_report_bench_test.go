package fhirapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/store"
)

// fillLog appends n events to env's log straight through the store, in
// transactions of 5,000; every step-th names patient "hot" (with another
// patient), the others name one of 5,000 other patients. It returns how
// many name "hot".
func fillLog(tb testing.TB, env *testEnv, n, step int) int {
	tb.Helper()
	hot := 0
	base := time.Now().Add(-30 * 24 * time.Hour)
	for i := 0; i < n; {
		j := min(n, i+5000)
		err := env.db.Update(context.Background(), func(w store.Writer) error {
			for k := i; k < j; k++ {
				p := []string{fmt.Sprintf("other%d", k%5000)}
				if k%step == 0 {
					p = append(p, "hot")
					hot++
				}
				e := &audit.Event{Time: base.Add(time.Duration(k) * 10 * time.Second), Interaction: "read", Action: "R", Outcome: "0",
					UserID: fmt.Sprintf("user%d", k%300), Roles: []string{"physician"}, Purpose: "TREAT", Patients: p,
					Entities: []string{"Observation/o" + itoa(int64(k)) + "/_history/1"}, Allowed: true, Policies: []string{"care-team"}}
				if _, err := w.AppendAudit(e.Leaf()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
		i = j
	}
	return hot
}

// reportLines fetches a report and returns its header and lines.
func reportLines(tb testing.TB, env *testEnv, id string) (reportHeader, []reportLine) {
	tb.Helper()
	w := raw(env.h, &admin, "GET", "/fhir/Patient/"+id+"/$access-report", nil)
	if w.Code != http.StatusOK {
		tb.Fatalf("report: %d %s", w.Code, w.Body)
	}
	sc := bufio.NewScanner(w.Body)
	sc.Buffer(nil, 1<<20)
	var hdr reportHeader
	var lines []reportLine
	for first := true; sc.Scan(); first = false {
		if first {
			if err := json.Unmarshal(sc.Bytes(), &hdr); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		var l reportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			tb.Fatal(err)
		}
		lines = append(lines, l)
	}
	return hdr, lines
}

// TestAccessReportIndexed: over a log partly integrated (indexed) and
// partly not, the report lists exactly the events naming the patient, in
// log order, the integrated ones with a proof that verifies with the
// public key alone.
func TestAccessReportIndexed(t *testing.T) {
	env := newTestEnv(t)
	v, sign := signer(t, env)
	hot := fillLog(t, env, 20_000, 7)
	sign()
	env.do("GET", "/fhir/Patient/hot", nil) // a 404 naming no patient
	// A denial naming the patient, after the checkpoint: in the tail.
	deny := &audit.Event{Time: time.Now(), Interaction: "read", Action: "R", Outcome: "4", UserID: "doc", Patients: []string{"hot"}}
	if err := env.api.Audit.Record(context.Background(), deny); err != nil {
		t.Fatal(err)
	}
	hot++
	hdr, lines := reportLines(t, env, "hot")
	if hdr.Events != hot || len(lines) != hot || hdr.Scanned < 20_002 {
		t.Fatalf("report has %d lines (header %d, scanned %d), want %d", len(lines), hdr.Events, hdr.Scanned, hot)
	}
	if !slices.IsSortedFunc(lines, func(a, b reportLine) int { return int(a.Index) - int(b.Index) }) {
		t.Error("lines not in log order")
	}
	for k, l := range lines {
		if k < len(lines)-1 && (l.Index%7 != 0 || l.Pending) {
			t.Fatalf("line %d: index %d (pending %v), not an event naming the patient", k, l.Index, l.Pending)
		}
		if l.Pending {
			if k != len(lines)-1 || l.Who != "doc" || l.Decision != "deny" {
				t.Errorf("pending line %+v", l)
			}
			continue
		}
		if _, err := audit.VerifyInclusion(l.Leaf, l.Index, []byte(hdr.Checkpoint), l.Proof, v); err != nil {
			t.Fatalf("line %d: %v", l.Index, err)
		}
	}
}

// BenchmarkAccessReportIndexed measures the access report (acceptance: a
// patient with 10,000 accesses in <= 2 s p95) over a log of 200,000 events
// of which 10,000 name the patient, and, side by side, the scan of the
// whole log that the report did before the leaf index (ratio scan/index).
// Every line's proof is verified once with the public key alone.
func BenchmarkAccessReportIndexed(b *testing.B) {
	env := newTestEnv(b)
	v, sign := signer(b, env)
	const n, m = 200_000, 10_000
	if hot := fillLog(b, env, n, n/m); hot != m {
		b.Fatalf("%d events name the patient", hot)
	}
	t0 := time.Now()
	sign()
	integrate := time.Since(t0)
	hdr, lines := reportLines(b, env, "hot")
	if len(lines) != m {
		b.Fatalf("%d lines", len(lines))
	}
	for _, l := range lines {
		if _, err := audit.VerifyInclusion(l.Leaf, l.Index, []byte(hdr.Checkpoint), l.Proof, v); err != nil {
			b.Fatalf("line %d: %v", l.Index, err)
		}
	}
	// The former report: a scan of the whole log, a proof per line.
	scan := func() time.Duration {
		t0 := time.Now()
		p := env.api.Audit.Prover()
		needle := []byte(`"reference":"Patient/hot"`)
		found := 0
		err := p.ScanLeaves(context.Background(), 0, hdr.TreeSize, 0, func(i uint64, leaf []byte) error {
			if !bytes.Contains(leaf, needle) {
				return nil
			}
			if _, ok := decodeLine(leaf, "hot"); !ok {
				return nil
			}
			found++
			_, err := p.InclusionProof(context.Background(), i, hdr.TreeSize)
			return err
		})
		if err != nil || found < m {
			b.Fatalf("scan: %v, %d found", err, found)
		}
		return time.Since(t0)
	}
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		w := raw(env.h, &admin, "GET", "/fhir/Patient/hot/$access-report", nil)
		took = append(took, time.Since(t0))
		if w.Code != http.StatusOK || w.Body.Len() < m*500 {
			b.Fatalf("%d, %d bytes", w.Code, w.Body.Len())
		}
	}
	b.StopTimer()
	slices.Sort(took)
	p95 := took[min(len(took)-1, (len(took)*95+99)/100-1)]
	s := min(scan(), scan())
	b.ReportMetric(float64(p95.Milliseconds()), "p95-ms")
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(s.Milliseconds()), "scan-ms")
	b.ReportMetric(float64(s)/float64(took[len(took)/2]), "scan/index")
	b.ReportMetric(float64(integrate.Milliseconds()), "integrate-ms")
}
