package audit

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/audit/internal/memstore"
	"github.com/phivault/phivault/internal/store"
)

// ixEvent is event i of the index tests: a few patients and users, times
// spread over months and not in log order (events are recorded when the
// request started, appended when it ends).
func ixEvent(i int) *Event {
	r := rand.New(rand.NewPCG(uint64(i), 11))
	base := time.Date(2025, 11, 30, 22, 0, 0, 0, time.UTC)
	e := &Event{
		Time:        base.Add(time.Duration(i)*7*time.Minute + time.Duration(r.IntN(600)-300)*time.Second),
		Interaction: "read", Action: "R", Outcome: Success, Allowed: true,
		UserID:   fmt.Sprintf("u%d", r.IntN(5)),
		Entities: []string{fmt.Sprintf("Observation/o%d/_history/1", i)},
	}
	switch k := r.IntN(10); {
	case k < 4:
		e.Patients = []string{"p-hot"}
	case k < 6:
		e.Patients = []string{"p-hot", fmt.Sprintf("p%d", r.IntN(3))}
	case k < 9:
		e.Patients = []string{fmt.Sprintf("p%d", r.IntN(3))}
	}
	if i%97 == 0 {
		e.UserID = "" // no user (a failed login)
	}
	return e
}

// appendIx appends ixEvents [from, to).
func appendIx(t testing.TB, st store.Backend, from, to int) {
	t.Helper()
	if err := st.Update(context.Background(), func(w store.Writer) error {
		for i := from; i < to; i++ {
			if _, err := w.AppendAudit(ixEvent(i).Leaf()); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// want is the brute-force answer over events [0, n), from the events
// themselves (not from their leaves).
func want(n int, q LeafQuery) []uint64 {
	var out []uint64
	for i := int(q.Start); i < n; i++ {
		e := ixEvent(i)
		tm := e.Time.UTC()
		switch {
		case q.Patient != "" && !slices.Contains(e.Patients, q.Patient),
			q.Agent != "" && e.UserID != q.Agent,
			!q.From.IsZero() && tm.Before(q.From),
			!q.To.IsZero() && !tm.Before(q.To):
			continue
		}
		out = append(out, uint64(i))
	}
	return out
}

func indexesOf(ms []LeafMatch) []uint64 {
	out := make([]uint64, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Index)
	}
	return out
}

func ixQueries() []LeafQuery {
	day := func(d int) time.Time { return time.Date(2025, 12, d, 0, 0, 0, 0, time.UTC) }
	return []LeafQuery{
		{},
		{Patient: "p-hot"},
		{Patient: "p1"},
		{Patient: "nobody"},
		{Agent: "u3"},
		{Agent: "u3", Patient: "p-hot"},
		{Patient: "p-hot", From: day(5), To: day(9)},
		{From: day(2), To: day(3)},
		{From: day(12).Add(13*time.Hour + 17*time.Minute)},
		{To: day(1).Add(90 * time.Minute)},
		{From: day(3), To: day(3)},
		{Agent: "u1", Start: 2500},
		{Patient: "p2", From: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), To: day(20)},
		{From: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
}

// check compares every query's answer with the brute-force one, through
// pages of a few sizes too.
func checkQueries(t *testing.T, p *Prover, n int) {
	t.Helper()
	ctx := context.Background()
	for _, q := range ixQueries() {
		res, err := p.FindLeaves(ctx, q, nil)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		w := want(n, q)
		if diff := cmp.Diff(w, indexesOf(res.Matches), cmp.Comparer(func(a, b []uint64) bool { return slices.Equal(a, b) })); diff != "" {
			t.Errorf("query %+v (%d indexed of %d): (-want +got)\n%s", q, res.Indexed, res.Size, diff)
		}
		for _, m := range res.Matches {
			if !bytes.Equal(m.Leaf, ixEvent(int(m.Index)).Leaf()) {
				t.Fatalf("query %+v: leaf %d is not the event appended there", q, m.Index)
			}
		}
		for _, limit := range []int{1, 7, 1000} {
			if limit == 1 && len(w) > 100 || limit == 7 && len(w) > 300 && testing.Short() {
				continue
			}
			var got []uint64
			pq := q
			pq.Limit = limit
			for pages := 0; ; pages++ {
				if pages > n+1 {
					t.Fatalf("query %+v limit %d: paging does not end", q, limit)
				}
				res, err := p.FindLeaves(ctx, pq, nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Matches) > limit {
					t.Fatalf("limit %d: %d matches", limit, len(res.Matches))
				}
				got = append(got, indexesOf(res.Matches)...)
				if !res.More {
					break
				}
				pq.Start = res.Next
			}
			if !slices.Equal(got, w) {
				t.Errorf("query %+v in pages of %d: got %d matches, want %d", q, limit, len(got), len(w))
			}
		}
	}
}

// TestIndexFind: the index answers like a scan of the whole log, for
// leaves integrated in many steps (posting chunks filled across steps),
// for a tail not integrated yet, and after a restart (a new Integrator and
// Prover over the same store resume from the stored state).
func TestIndexFind(t *testing.T) {
	st := memstore.New()
	in := NewIntegrator(st)
	ctx := context.Background()
	n := 0
	for _, step := range []int{1, 2, 500, 1021, 3, 1030, 2000} {
		appendIx(t, st, n, n+step)
		n += step
		if _, err := in.Integrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	appendIx(t, st, n, n+300) // a tail beyond the integrated tree
	n += 300
	checkQueries(t, NewProver(st), n)
	if err := st.View(ctx, func(r store.Reader) error { return VerifyIndex(ctx, r) }); err != nil {
		t.Errorf("VerifyIndex: %v", err)
	}
	// Restart: new integrator and prover over the same store.
	in2 := NewIntegrator(st)
	tree, err := in2.Integrate(ctx)
	if err != nil || tree.Size != uint64(n) {
		t.Fatalf("integrate after restart: %v, size %d want %d", err, tree.Size, n)
	}
	res, err := NewProver(st).FindLeaves(ctx, LeafQuery{Patient: "p-hot"}, nil)
	if err != nil || res.Indexed != uint64(n) || res.Size != uint64(n) {
		t.Fatalf("after restart: %v, indexed %d size %d, want %d", err, res.Indexed, res.Size, n)
	}
	checkQueries(t, NewProver(st), n)
	if err := st.View(ctx, func(r store.Reader) error { return VerifyIndex(ctx, r) }); err != nil {
		t.Errorf("VerifyIndex: %v", err)
	}
}

// TestIndexBuiltForOldLog: a log integrated before the index existed (its
// index keys removed) gets its index at the next integration, equal to
// one built along the way.
func TestIndexBuiltForOldLog(t *testing.T) {
	st := memstore.New()
	ctx := context.Background()
	appendIx(t, st, 0, 3000)
	if _, err := NewIntegrator(st).Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	var before map[string][]byte
	st.Tamper(func(leaves [][]byte, meta map[string][]byte) [][]byte {
		before = map[string][]byte{}
		for k, v := range meta {
			if strings.HasPrefix(k, prefixIndex) {
				before[k] = v
				delete(meta, k)
			}
		}
		return leaves
	})
	if len(before) == 0 {
		t.Fatal("integration wrote no index")
	}
	res, err := NewProver(st).FindLeaves(ctx, LeafQuery{Patient: "p1"}, nil)
	if err != nil || res.Indexed != 0 || !slices.Equal(indexesOf(res.Matches), want(3000, LeafQuery{Patient: "p1"})) {
		t.Fatalf("without an index: %v, indexed %d, %d matches", err, res.Indexed, len(res.Matches))
	}
	appendIx(t, st, 3000, 3100)
	if _, err := NewIntegrator(st).Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	checkQueries(t, NewProver(st), 3100)
	if err := st.View(ctx, func(r store.Reader) error { return VerifyIndex(ctx, r) }); err != nil {
		t.Errorf("VerifyIndex: %v", err)
	}
}

// TestVerifyIndexDetectsTampering: a changed, removed or added index key
// fails VerifyIndex.
func TestVerifyIndexDetectsTampering(t *testing.T) {
	ctx := context.Background()
	base := memstore.New()
	appendIx(t, base, 0, 2500)
	if _, err := NewIntegrator(base).Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	hot := termKey(termPatient, "p-hot")
	for name, fn := range map[string]func(meta map[string][]byte){
		"posting dropped":  func(m map[string][]byte) { c := m[chunkKey(hot, 0)]; m[chunkKey(hot, 0)] = c[:len(c)-1] },
		"posting added":    func(m map[string][]byte) { m[chunkKey(hot, 0)] = append(m[chunkKey(hot, 0)], 1) },
		"head changed":     func(m map[string][]byte) { m[hot] = []byte{3} },
		"bucket removed":   func(m map[string][]byte) { delete(m, hourKey(ixEvent(100).Time)) },
		"foreign list":     func(m map[string][]byte) { m[termKey(termAgent, "mallory")] = []byte{1} },
		"index size moved": func(m map[string][]byte) { m[keyIndexSize] = []byte{0, 0, 0, 0, 0, 0, 0, 9} },
	} {
		st := base.Clone()
		st.Tamper(func(leaves [][]byte, meta map[string][]byte) [][]byte { fn(meta); return leaves })
		if err := st.View(ctx, func(r store.Reader) error { return VerifyIndex(ctx, r) }); err == nil {
			t.Errorf("%s: VerifyIndex found nothing", name)
		}
	}
	if err := base.View(ctx, func(r store.Reader) error { return VerifyIndex(ctx, r) }); err != nil {
		t.Errorf("untouched: %v", err)
	}
}

// TestInclusionProofs: the batched proofs equal the single ones and verify
// against a signed checkpoint with the public key alone.
func TestInclusionProofs(t *testing.T) {
	s, v := testKeys(t, testOrigin)
	st := memstore.New()
	ctx := context.Background()
	n := 70000 // past two tile levels (65,536 leaves)
	if testing.Short() {
		n = 9000
	}
	appendIx(t, st, 0, n)
	cp := NewCheckpointer(st, NewIntegrator(st), s, CheckpointerOptions{})
	signed, err := cp.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenCheckpoint(signed, v)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProver(st)
	res, err := p.FindLeaves(ctx, LeafQuery{Patient: "p-hot"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	idx := append(indexesOf(res.Matches), 0, c.Size-1)
	proofs, err := p.InclusionProofs(ctx, idx, c.Size)
	if err != nil {
		t.Fatal(err)
	}
	leaves := append(res.Matches, LeafMatch{0, ixEvent(0).Leaf()}, LeafMatch{c.Size - 1, ixEvent(int(c.Size - 1)).Leaf()})
	for k, i := range idx {
		if k%997 == 0 || k >= len(idx)-2 {
			one, err := p.InclusionProof(ctx, i, c.Size)
			if err != nil || !cmp.Equal(one, proofs[k]) {
				t.Fatalf("leaf %d: batched proof differs from the single one (%v)", i, err)
			}
		}
		if _, err := VerifyInclusion(leaves[k].Leaf, i, signed, proofs[k], v); err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
	}
	if _, err := p.InclusionProofs(ctx, []uint64{c.Size}, c.Size); err == nil {
		t.Error("a proof for an index beyond the size was given")
	}
}
