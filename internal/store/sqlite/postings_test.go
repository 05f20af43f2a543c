package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
)

func withPostings(n int64) Option { return func(o *options) { o.postingsBytes = n } }

// putMany stores Patient/id for every id in tokens, with its tokens, in
// one Update.
func putMany(t testing.TB, be *Backend, vid int64, tokens map[string][]string) {
	t.Helper()
	err := be.Update(context.Background(), func(w store.Writer) error {
		for id, ts := range tokens {
			var toks []store.Token
			for _, s := range ts {
				toks = append(toks, store.Token(s))
			}
			if _, err := w.Put(store.Version{Type: "Patient", ID: id, VID: vid, Updated: time.Now(), Body: []byte("x")}, toks); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// twinStores opens a store that keeps postings in memory and one that
// keeps none, each holding data (putMany, version 1).
func twinStores(t *testing.T, data map[string][]string) (with, without *Backend) {
	t.Helper()
	with = openBackend(t, t.TempDir())
	without, err := Open(t.TempDir(), withPostings(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { without.Close() })
	putBoth(t, with, without, 1, data)
	return with, without
}

// putBoth puts the same versions in both stores.
func putBoth(t testing.TB, with, without *Backend, vid int64, tokens map[string][]string) {
	t.Helper()
	putMany(t, with, vid, tokens)
	putMany(t, without, vid, tokens)
}

// patientShaped is 40 "patients" of 50 resources each; a resource's
// category is one of four, so each category has 500 postings.
func patientShaped() map[string][]string {
	m := map[string][]string{}
	for i := range 2000 {
		m[fmt.Sprintf("r%05d", i)] = []string{fmt.Sprintf("pat:%d", i/50), fmt.Sprintf("cat:%d", i%4), fmt.Sprintf("odd:%d", i%2)}
	}
	return m
}

func patientQuery(pat, cat int) store.MatchQuery {
	return store.MatchQuery{Type: "Patient", All: [][]store.Token{{store.Token(fmt.Sprint("pat:", pat))}, {store.Token(fmt.Sprint("cat:", cat))}}}
}

// TestPostingSetsAnswerAsTheIndex: queries driven by a small group that
// probe a large one read it into a set once they have probed it for as
// many candidates as it has postings, and from then on answer from it
// exactly as the index does (checked against a store that keeps no sets,
// over the same data, for first pages, later pages and limits), as they
// do once the drivers' postings are kept too; a commit
// that changes the index drops the sets, and the answers follow the
// commit.
func TestPostingSetsAnswerAsTheIndex(t *testing.T) {
	with, without := twinStores(t, patientShaped())

	r := rand.New(rand.NewPCG(1, 2))
	same := func(q store.MatchQuery) {
		t.Helper()
		if got, want := match(t, with, q), match(t, without, q); !slices.Equal(got, want) {
			t.Fatalf("%v: with sets %v, index alone %v", q, got, want)
		}
	}
	query := func() store.MatchQuery {
		q := patientQuery(r.IntN(40), r.IntN(4))
		switch r.IntN(3) {
		case 1:
			q.Limit = 1 + r.IntN(20)
		case 2:
			q.After = fmt.Sprintf("r%05d", r.IntN(2000))
		}
		q.Alone = r.IntN(2) == 0
		return q
	}
	// cat:0 has 500 postings; each query probes it for 50 candidates.
	for range 9 {
		q := query()
		q.All[1] = []store.Token{store.Token("cat:0")}
		same(q)
	}
	if len(with.postings.sets.m) != 0 {
		t.Fatal("a group was read into a set before its probes paid for it")
	}
	for range 200 {
		same(query())
	}
	if len(with.postings.sets.m) == 0 {
		t.Fatal("no group was read into a set after 200 patient-shaped queries")
	}
	if len(with.postings.lists.m) == 0 {
		t.Fatal("no driver's postings were kept after 200 patient-shaped queries")
	}
	for range 200 { // answered from the drivers' postings kept
		same(query())
	}

	// A commit that changes the index: r00000 moves from cat:0 to cat:1,
	// a new resource joins patient 0 in cat:0.
	change := map[string][]string{"r00000": {"pat:0", "cat:1", "odd:0"}}
	putBoth(t, with, without, 2, change)
	added := map[string][]string{"r99999": {"pat:0", "cat:0"}}
	putBoth(t, with, without, 1, added)
	if len(with.postings.sets.m)+len(with.postings.lists.m) != 0 {
		t.Fatal("the sets or drivers' postings outlived a commit that changed the index")
	}
	want := []string{"r00004", "r00008", "r00012", "r00016", "r00020", "r00024", "r00028", "r00032", "r00036", "r00040", "r00044", "r00048", "r99999"}
	for range 100 {
		if got := match(t, with, patientQuery(0, 0)); !slices.Equal(got, want) {
			t.Fatalf("patient 0, cat:0 after the commits: %v, want %v", got, want)
		}
		same(query())
	}
	if len(with.postings.sets.m) == 0 {
		t.Fatal("no group was read into a set again after the commits")
	}
}

// TestPostingSetsKeepTheSnapshot: a View that began before a commit keeps
// its snapshot's answer, though sets of the new state are read meanwhile
// (one of its candidates left the probed group); a commit that changes no
// idx rows keeps the sets.
func TestPostingSetsKeepTheSnapshot(t *testing.T) {
	be := openBackend(t, t.TempDir())
	putMany(t, be, 1, patientShaped())
	for i := range 100 {
		match(t, be, patientQuery(i%40, 0))
	}
	if len(be.postings.sets.m) == 0 {
		t.Fatal("no set was read")
	}
	if err := be.Update(context.Background(), func(w store.Writer) error {
		return w.SetMeta("k", []byte("v")) // no idx rows
	}); err != nil {
		t.Fatal(err)
	}
	if len(be.postings.sets.m) == 0 {
		t.Fatal("a commit that changed no idx rows dropped the sets")
	}
	before := match(t, be, patientQuery(1, 0))
	err := be.View(context.Background(), func(r store.Reader) error {
		if got, err := r.Match(patientQuery(1, 0)); err != nil || !slices.Equal(got, before) {
			return fmt.Errorf("in the View before the commit: %v, %v", got, err)
		}
		// r00052 leaves cat:0, r50000 joins patient 1 in it.
		putMany(t, be, 2, map[string][]string{"r00052": {"pat:1", "cat:1"}})
		putMany(t, be, 1, map[string][]string{"r50000": {"pat:1", "cat:0"}})
		for i := range 100 { // other Views read the new state into sets
			match(t, be, patientQuery(i%40, 0))
		}
		if got, err := r.Match(patientQuery(1, 0)); err != nil || !slices.Equal(got, before) {
			return fmt.Errorf("in the View after the commit: %v, %v; its snapshot had %v", got, err, before)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := match(t, be, patientQuery(1, 0)); !slices.Contains(got, "r50000") || slices.Contains(got, "r00052") {
		t.Fatalf("a View after the commits: %v, want r50000 and not r00052", got)
	}
}

// TestAloneMatchTakesNoSnapshot: a Match whose View reads nothing else
// (Alone) and is answered from memory does not start a read transaction;
// one that is not Alone does, and both answer alike.
func TestAloneMatchTakesNoSnapshot(t *testing.T) {
	be := openBackend(t, t.TempDir())
	putMany(t, be, 1, patientShaped())
	for i := range 400 {
		match(t, be, patientQuery(i%40, 0)) // the sets and the drivers' postings
	}
	if len(be.postings.lists.m) == 0 {
		t.Fatal("no driver's postings were kept")
	}
	for i := range 40 {
		var alone, tied []string
		for _, a := range []bool{true, false} {
			err := be.View(context.Background(), func(r store.Reader) error {
				q := patientQuery(i, 0)
				q.Alone = a
				got, err := r.Match(q)
				if err != nil {
					return err
				}
				if snapped := r.(*reader).snapped; snapped == a {
					return fmt.Errorf("Alone %v: snapshot taken %v", a, snapped)
				}
				if a {
					alone = got
				} else {
					tied = got
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(alone, tied) {
			t.Fatalf("patient %d: alone %v, tied to a snapshot %v", i, alone, tied)
		}
	}
}

// BenchmarkMatchPatientShaped runs the patient-scoped token query (a
// patient's 63 resources, AND one of four categories, each on 25,000 of
// the 100,800 resources) over patients in turn, side by side on a store
// that probes the category per candidate and one that keeps its postings
// in memory (postings).
func BenchmarkMatchPatientShaped(b *testing.B) {
	const patients, each = 1600, 63
	data := map[string][]string{}
	for i := range patients * each {
		data[fmt.Sprintf("r%07d", i)] = []string{fmt.Sprintf("pat:%d", i/each), fmt.Sprintf("cat:%d", i%4), fmt.Sprintf("code:%d", i%97)}
	}
	for _, mode := range []string{"probe", "sets"} {
		b.Run(mode, func(b *testing.B) {
			var opts []Option
			if mode == "probe" {
				opts = append(opts, withPostings(0))
			}
			be, err := Open(b.TempDir(), opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			for start := 0; start < len(data); start += 5000 {
				part := map[string][]string{}
				for i := start; i < min(start+5000, len(data)); i++ {
					id := fmt.Sprintf("r%07d", i)
					part[id] = data[id]
				}
				putMany(b, be, 1, part)
			}
			i := 0
			for b.Loop() {
				i++
				err := be.View(context.Background(), func(r store.Reader) error {
					ids, err := r.Match(patientQuery(i%patients, 1))
					if err == nil && len(ids) < 15 {
						err = fmt.Errorf("%d ids", len(ids))
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPostingSetsBounded: the sets never hold more than their limit; a
// set that would take more than a quarter of it is not kept.
func TestPostingSetsBounded(t *testing.T) {
	p := newPostings(4 * 1000)
	set := func(from, n int) idSet {
		s := idSet{}
		for i := range n {
			s[fmt.Sprintf("r%05d", from+i)] = struct{}{} // 54 bytes each
		}
		return s
	}
	p.put("big", set(0, 19), 0) // 1,026 bytes: more than a quarter
	if len(p.sets.m) != 0 {
		t.Fatal("a set of more than a quarter of the limit was kept")
	}
	for i := range 400 {
		p.put(fmt.Sprint("g", i%7), set(i*100, 6+i%13), 0) // 324 to 972 bytes
		if p.sets.bytes > p.sets.limit || p.sets.bytes != sumBytes(p) {
			t.Fatalf("after put %d: %d bytes counted, %d held, limit %d", i, p.sets.bytes, sumBytes(p), p.sets.limit)
		}
	}
	p.put("late", set(0, 10), 1) // a generation that is not current
	if _, ok := p.sets.m["late"]; ok {
		t.Fatal("a set read in another generation was kept")
	}
}

func sumBytes(p *postings) (n int64) {
	for _, s := range p.sets.m {
		n += setBytes(s)
	}
	return n
}
