package fhirapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/phivault/phivault/internal/audit"
)

// signer signs checkpoints of env's log with a fresh key; the returned
// function signs one now and returns its size.
func signer(t testing.TB, env *testEnv) (note.Verifier, func() uint64) {
	t.Helper()
	skey, vkey, err := audit.GenerateKey("phivault.test/audit")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	cp := audit.NewCheckpointer(env.db, audit.NewIntegrator(env.db), s, audit.CheckpointerOptions{})
	return v, func() uint64 {
		b, err := cp.Checkpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		c, err := audit.OpenCheckpoint(b, v)
		if err != nil {
			t.Fatal(err)
		}
		return c.Size
	}
}

// auditCoverageExtra covers the audit API's own routes for
// TestAuditCoverage: each request is decided and audited, denials too.
func auditCoverageExtra(t *testing.T, cv *coverage) {
	_, sign := signer(t, cv.env)
	cv.do(admin, "GET", "/fhir/_audit/checkpoint", nil, 404, []evSummary{failed("audit-checkpoint", "R")})
	size := sign()
	cv.do(admin, "GET", "/fhir/_audit/checkpoint", nil, 200, []evSummary{ev("audit-checkpoint", "R", nil)})
	cv.do(admin, "GET", "/fhir/_audit/leaf?index=0", nil, 200, []evSummary{ev("audit-leaf", "R", nil)})
	cv.do(admin, "GET", "/fhir/_audit/leaf?index=99999999", nil, 404, []evSummary{failed("audit-leaf", "R")})
	cv.do(admin, "GET", "/fhir/_audit/leaf?index=-1", nil, 400, []evSummary{failed("audit-leaf", "R")})
	cv.do(admin, "GET", "/fhir/_audit/proof/inclusion?index=1", nil, 200, []evSummary{ev("audit-proof", "R", nil)})
	cv.do(admin, "GET", "/fhir/_audit/proof/inclusion?index=1&size=99999999", nil, 400, []evSummary{failed("audit-proof", "R")})
	cv.do(admin, "GET", "/fhir/_audit/proof/consistency?from=1&to="+itoa(int64(size)), nil, 200, []evSummary{ev("audit-proof", "R", nil)})
	cv.do(admin, "GET", "/fhir/_audit/proof/consistency?from=5&to=2", nil, 400, []evSummary{failed("audit-proof", "R")})
	cv.do(admin, "GET", "/fhir/Patient/p2/$access-report", nil, 200, []evSummary{ev("access-report", "E", ps("p2"))})
	cv.do(admin, "GET", "/fhir/Patient/bad%20id/$access-report", nil, 400, []evSummary{failed("access-report", "E")})
	deny := func(i, a string, patients ...string) evSummary {
		return evSummary{Interaction: i, Action: a, Outcome: "4", User: "doc", Decision: "deny", Patients: patients}
	}
	cv.do(doctor, "GET", "/fhir/_audit/checkpoint", nil, 403, []evSummary{deny("audit-checkpoint", "R")})
	cv.do(doctor, "GET", "/fhir/_audit/leaf?index=0", nil, 403, []evSummary{deny("audit-leaf", "R")})
	cv.do(doctor, "GET", "/fhir/_audit/proof/inclusion?index=0", nil, 403, []evSummary{deny("audit-proof", "R")})
	cv.do(doctor, "GET", "/fhir/Patient/p2/$access-report", nil, 403, []evSummary{deny("access-report", "E", "p2")})
	auditSearchCoverageExtra(t, cv)
}

// TestAuditAPIProofs fetches a checkpoint, a leaf and proofs over HTTP and
// verifies them with the public key alone.
func TestAuditAPIProofs(t *testing.T) {
	env := newTestEnv(t)
	v, sign := signer(t, env)
	for i := range 10 {
		env.do("PUT", "/fhir/Patient/p"+itoa(int64(i)), patient("p"+itoa(int64(i)), ""))
	}
	sign()
	get := func(path string) []byte {
		w := raw(env.h, &admin, "GET", path, nil)
		if w.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		return w.Body.Bytes()
	}
	cp1 := get("/fhir/_audit/checkpoint")
	c1, err := audit.OpenCheckpoint(cp1, v)
	if err != nil {
		t.Fatal(err)
	}
	for _, idx := range []uint64{0, 3, c1.Size - 1} {
		leaf := get("/fhir/_audit/leaf?index=" + itoa(int64(idx)))
		var pr proofJSON
		if err := json.Unmarshal(get("/fhir/_audit/proof/inclusion?index="+itoa(int64(idx))), &pr); err != nil || pr.Size != c1.Size {
			t.Fatalf("proof: %v, size %d want %d", err, pr.Size, c1.Size)
		}
		if _, err := audit.VerifyInclusion(leaf, idx, cp1, pr.Hashes, v); err != nil {
			t.Errorf("leaf %d: %v", idx, err)
		}
		// The proof of one leaf does not prove another, nor a changed leaf.
		other := get("/fhir/_audit/leaf?index=" + itoa(int64((idx+1)%c1.Size)))
		if _, err := audit.VerifyInclusion(other, idx, cp1, pr.Hashes, v); err == nil {
			t.Errorf("leaf %d's proof verified another leaf", idx)
		}
		tampered := append([]byte{}, leaf...)
		tampered[len(tampered)/2] ^= 1
		if _, err := audit.VerifyInclusion(tampered, idx, cp1, pr.Hashes, v); err == nil {
			t.Errorf("leaf %d's proof verified a changed leaf", idx)
		}
	}
	env.do("GET", "/fhir/Patient/p1", nil)
	sign()
	cp2 := get("/fhir/_audit/checkpoint")
	c2, _ := audit.OpenCheckpoint(cp2, v)
	var pr proofJSON
	if err := json.Unmarshal(get("/fhir/_audit/proof/consistency?from="+itoa(int64(c1.Size))+"&to="+itoa(int64(c2.Size))), &pr); err != nil {
		t.Fatal(err)
	}
	if err := audit.VerifyConsistency(cp1, cp2, pr.Hashes, v); err != nil {
		t.Errorf("consistency %d -> %d: %v", c1.Size, c2.Size, err)
	}
	if ct := raw(env.h, &admin, "GET", "/fhir/_audit/checkpoint", nil).Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("checkpoint Content-Type %q", ct)
	}
}

// TestAccessReport: the report lists exactly the events naming the
// patient, each verifiable with the public key alone; events after the
// checkpoint are pending.
func TestAccessReport(t *testing.T) {
	env := newTestEnv(t)
	v, sign := signer(t, env)
	env.do("PUT", "/fhir/Patient/p1", patient("p1", "id1"))
	env.do("PUT", "/fhir/Patient/p2", patient("p2", "id2"))
	env.do("GET", "/fhir/Patient/p1", nil)
	env.do("GET", "/fhir/Patient/p2", nil)
	env.do("GET", "/fhir/Patient?identifier=id1", nil, "X-Purpose-Of-Use", "HPAYMT")
	env.do("POST", "/fhir/Observation", observation("Patient/p1"))
	raw(env.h, &doctor, "GET", "/fhir/Patient/p1", nil)
	sign()
	env.do("GET", "/fhir/Patient/p1/_history", nil) // after the checkpoint
	w := raw(env.h, &admin, "GET", "/fhir/Patient/p1/$access-report", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	sc := bufio.NewScanner(w.Body)
	sc.Buffer(nil, 1<<20)
	sc.Scan()
	var hdr reportHeader
	if err := json.Unmarshal(sc.Bytes(), &hdr); err != nil {
		t.Fatal(err)
	}
	var got []string
	for sc.Scan() {
		var l reportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		got = append(got, l.Interaction+"/"+l.Who+"/"+l.Outcome)
		if l.Pending {
			if l.Index < hdr.TreeSize || l.Proof != nil {
				t.Errorf("line %d pending but covered by the checkpoint", l.Index)
			}
			continue
		}
		if _, err := audit.VerifyInclusion(l.Leaf, l.Index, []byte(hdr.Checkpoint), l.Proof, v); err != nil {
			t.Errorf("line %d: %v", l.Index, err)
		}
		if s := summarize(t, l.Leaf); s.Interaction != l.Interaction || s.User != l.Who || len(s.Patients) == 0 {
			t.Errorf("line %d does not match its leaf: %+v vs %+v", l.Index, l, s)
		}
	}
	// The doctor's denied read names the patient, so the report shows it.
	want := []string{"update/admin/0", "read/admin/0", "search-type/admin/0", "create/admin/0", "read/doc/4", "history-instance/admin/0"}
	if strings.Join(got, " ") != strings.Join(want, " ") || hdr.Events != len(want) || hdr.Patient != "p1" {
		t.Errorf("report lines %v (header %+v), want %v", got, hdr, want)
	}
}

// BenchmarkAccessReport measures the report over a log of 50,000 events
// about other patients and 1,000 about one patient, appended through
// Log.Record (BenchmarkAccessReportIndexed measures 200,000 and 10,000).
func BenchmarkAccessReport(b *testing.B) {
	env := newTestEnv(b)
	_, sign := signer(b, env)
	const n, m = 50_000, 1_000
	ctx := context.Background()
	errs := make(chan error, n+m)
	sem := make(chan struct{}, 64)
	for i := range n + m {
		p := "other" + itoa(int64(i%997))
		if i%(n/m+1) == 0 {
			p = "p1"
		}
		e := &audit.Event{Time: time.Now(), Interaction: "read", Action: "R", Outcome: "0", UserID: "u", Patients: []string{p}, Entities: []string{"Patient/" + p + "/_history/1"}, Allowed: true}
		sem <- struct{}{}
		go func() { errs <- env.api.Audit.Record(ctx, e); <-sem }()
	}
	for range n + m {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	sign()
	b.ResetTimer()
	for b.Loop() {
		w := raw(env.h, &admin, "GET", "/fhir/Patient/p1/$access-report", nil)
		if lines := strings.Count(w.Body.String(), "\n") - 1; w.Code != http.StatusOK || lines < m {
			b.Fatalf("%d, %d lines", w.Code, lines)
		}
	}
}
