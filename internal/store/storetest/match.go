package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/phivault/phivault/internal/store"
)

func group(ss ...string) []store.Token { return toks(ss...) }

func checkMatch(t *testing.T, b store.Backend, q store.MatchQuery, want []string) {
	t.Helper()
	view(t, b, func(r store.Reader) error {
		got, err := r.Match(q)
		if err != nil {
			t.Errorf("Match(%q): %v", q.All, err)
			return nil
		}
		if !eqStrings(got, want) {
			t.Errorf("Match(%s %q after %q limit %d) = %q, want %q", q.Type, q.All, q.After, q.Limit, got, want)
		}
		// Count is what Match returns without a limit (After still applies).
		cq := q
		cq.Limit = 0
		all, err := r.Match(cq)
		if err != nil {
			t.Errorf("Match: %v", err)
			return nil
		}
		if n, err := r.Count(q); err != nil || n != len(all) {
			t.Errorf("Count(%s %q after %q) = %d, %v; want %d", q.Type, q.All, q.After, n, err, len(all))
		}
		return nil
	})
}

// testMatch: tokens g:f / g:m (two values of one parameter) and c:1..c:3.
func testMatch(t *testing.T, b *closer) {
	// Written out of id order on purpose.
	res := []struct {
		id   string
		toks []string
	}{
		{"p5", []string{"g:f", "c:1"}},
		{"p1", []string{"g:f", "c:2", "c:3"}},
		{"p3", []string{"g:m", "c:1"}},
		{"p2", []string{"g:m", "c:3"}},
		{"p4", []string{"g:f"}},
		{"p6", []string{"g:f", "c:1", "c:1"}}, // a duplicate token is harmless
	}
	for _, r := range res {
		put(t, b, ver("Patient", r.id, 1, r.id), toks(r.toks...)...)
	}
	pq := func(groups ...[]store.Token) store.MatchQuery {
		return store.MatchQuery{Type: "Patient", All: groups}
	}
	checkMatch(t, b, pq(), []string{"p1", "p2", "p3", "p4", "p5", "p6"})
	checkMatch(t, b, pq(group("g:f")), []string{"p1", "p4", "p5", "p6"})
	checkMatch(t, b, pq(group("c:1", "c:3")), []string{"p1", "p2", "p3", "p5", "p6"})
	checkMatch(t, b, pq(group("g:f"), group("c:1", "c:3")), []string{"p1", "p5", "p6"})
	checkMatch(t, b, pq(group("c:1", "c:3"), group("g:f")), []string{"p1", "p5", "p6"})
	checkMatch(t, b, pq(group("g:m"), group("c:3"), group("c:3", "c:9")), []string{"p2"})
	checkMatch(t, b, pq(group("g:f"), group("g:m")), nil)
	// Large groups (a date range is an OR of many bucket tokens), driving
	// or probed.
	wide := []string{"c:3"}
	for i := range 40 {
		wide = append(wide, fmt.Sprint("x:", i))
	}
	checkMatch(t, b, pq(group("g:f"), group(wide...)), []string{"p1"})
	checkMatch(t, b, pq(group(wide...), group("g:m")), []string{"p2"})
	checkMatch(t, b, pq(group(append(wide, "c:1")...), group(wide[1:]...)), nil)
	checkMatch(t, b, pq(group("nothing")), nil)
	// An empty group is an OR of nothing: no resource satisfies it.
	checkMatch(t, b, pq(group("g:f"), group()), nil)
	checkMatch(t, b, store.MatchQuery{Type: "Observation"}, nil)
}

func testMatchPaging(t *testing.T, b *closer) {
	var want []string
	update(t, b, func(w store.Writer) error {
		for i := range 25 {
			id := fmt.Sprintf("r%03d", i)
			tk := []string{"any"}
			if i%3 == 0 {
				tk = append(tk, "third")
			}
			if _, err := w.Put(ver("Condition", id, 1, id), toks(tk...)); err != nil {
				return err
			}
			want = append(want, id)
		}
		return nil
	})
	for _, q := range []store.MatchQuery{
		{Type: "Condition"},
		{Type: "Condition", All: [][]store.Token{group("any")}},
		{Type: "Condition", All: [][]store.Token{group("any", "third")}},
	} {
		for _, limit := range []int{1, 7, 25, 30} {
			var got []string
			q.After, q.Limit = "", limit
			for {
				page := match(t, b, q)
				got = append(got, page...)
				if len(page) > limit {
					t.Fatalf("page of %d, limit %d", len(page), limit)
				}
				if len(page) < limit {
					break
				}
				q.After = page[len(page)-1]
			}
			if !eqStrings(got, want) {
				t.Errorf("paging %q limit %d: got %q, want %q", q.All, limit, got, want)
			}
		}
	}
	checkMatch(t, b, store.MatchQuery{Type: "Condition", All: [][]store.Token{group("third")}, After: "r010", Limit: 2}, []string{"r012", "r015"})
	checkMatch(t, b, store.MatchQuery{Type: "Condition", After: "r023"}, []string{"r024"})
}

// testMatchTypeScoped: the same token on two types only matches the type
// asked for.
func testMatchTypeScoped(t *testing.T, b *closer) {
	put(t, b, ver("Patient", "same", 1, "p"), toks("shared")...)
	put(t, b, ver("Observation", "same", 1, "o"), toks("shared")...)
	put(t, b, ver("Observation", "other", 1, "o2"), toks("shared", "obs-only")...)
	checkMatch(t, b, store.MatchQuery{Type: "Patient", All: [][]store.Token{group("shared")}}, []string{"same"})
	checkMatch(t, b, store.MatchQuery{Type: "Observation", All: [][]store.Token{group("shared")}}, []string{"other", "same"})
	checkMatch(t, b, store.MatchQuery{Type: "Patient", All: [][]store.Token{group("obs-only")}}, nil)
	// Deleting one type's resource leaves the other's tokens alone.
	put(t, b, store.Version{Type: "Observation", ID: "same", VID: 2, Updated: at(2), Deleted: true})
	checkMatch(t, b, store.MatchQuery{Type: "Patient", All: [][]store.Token{group("shared")}}, []string{"same"})
	checkMatch(t, b, store.MatchQuery{Type: "Observation", All: [][]store.Token{group("shared")}}, []string{"other"})
}

func testMatchTokensReplaced(t *testing.T, b *closer) {
	put(t, b, ver("Patient", "x", 1, "v1"), toks("old", "kept")...)
	put(t, b, ver("Patient", "x", 2, "v2"), toks("new", "kept")...)
	q := func(tok string) store.MatchQuery {
		return store.MatchQuery{Type: "Patient", All: [][]store.Token{group(tok)}}
	}
	checkMatch(t, b, q("old"), nil)
	checkMatch(t, b, q("new"), []string{"x"})
	checkMatch(t, b, q("kept"), []string{"x"})
	put(t, b, ver("Patient", "x", 3, "v3")) // no tokens at all
	checkMatch(t, b, q("new"), nil)
	checkMatch(t, b, q("kept"), nil)
	checkMatch(t, b, store.MatchQuery{Type: "Patient"}, []string{"x"})
}

// testMatchChangedInOneUpdate: one Update creates a resource, changes its
// tokens and deletes it, beside another it creates and keeps; what the
// commit leaves indexed are the last versions' tokens only.
func testMatchChangedInOneUpdate(t *testing.T, b *closer) {
	q := func(tok string) store.MatchQuery {
		return store.MatchQuery{Type: "Patient", All: [][]store.Token{group(tok)}}
	}
	update(t, b, func(w store.Writer) error {
		steps := []struct {
			v    store.Version
			toks []store.Token
		}{
			{ver("Patient", "x", 1, "x1"), toks("a", "b")},
			{ver("Patient", "y", 1, "y1"), toks("a", "y")},
			{ver("Patient", "x", 2, "x2"), toks("b", "c")},
			{ver("Patient", "z", 1, "z1"), toks("a", "z")},
			{ver("Patient", "z", 2, "z2"), toks("a", "z2")},
		}
		for _, s := range steps {
			if _, err := w.Put(s.v, s.toks); err != nil {
				return err
			}
		}
		if ids, err := w.Match(q("a")); err != nil || !eqStrings(ids, []string{"y", "z"}) {
			t.Errorf("Match(a) inside the Update = %q, %v; want [y z]", ids, err)
		}
		d := ver("Patient", "x", 3, "")
		d.Deleted = true
		_, err := w.Put(d, nil)
		return err
	})
	checkMatch(t, b, q("a"), []string{"y", "z"})
	checkMatch(t, b, q("b"), nil)
	checkMatch(t, b, q("c"), nil)
	checkMatch(t, b, q("z"), nil)
	checkMatch(t, b, q("z2"), []string{"z"})
	checkMatch(t, b, q("y"), []string{"y"})
}

// testMatchBinaryTokens: tokens are arbitrary bytes, zero bytes included,
// compared whole (a prefix or a truncation at a zero byte is not a match).
func testMatchBinaryTokens(t *testing.T, b *closer) {
	bin := []store.Token{{0}, {0, 0}, {'a', 0, 'b'}, {'a'}, {0xff, 0, 0xfe}, {}}
	for i, tk := range bin {
		put(t, b, ver("Device", fmt.Sprintf("d%d", i), 1, "x"), tk)
	}
	for i, tk := range bin {
		checkMatch(t, b, store.MatchQuery{Type: "Device", All: [][]store.Token{{tk}}}, []string{fmt.Sprintf("d%d", i)})
	}
	checkMatch(t, b, store.MatchQuery{Type: "Device", All: [][]store.Token{{{0, 0, 0}}}}, nil)
	checkMatch(t, b, store.MatchQuery{Type: "Device", All: [][]store.Token{{{'a', 0}}}}, nil)
	checkMatch(t, b, store.MatchQuery{Type: "Device", All: [][]store.Token{{bin[0], bin[2]}}}, []string{"d0", "d2"})
}

// testCarried: Carried names, per resource, which of the given tokens its
// current version carries: only live resources of the type, only tokens
// asked for, positions ascending; tokens replaced by a new version or a
// reindex are gone, and a rolled-back write changes nothing.
func testCarried(t *testing.T, b *closer) {
	put(t, b, ver("Observation", "a", 1, "x"), toks("y2020", "y2021", "other")...)
	put(t, b, ver("Observation", "b", 1, "x"), toks("y2019")...)
	put(t, b, ver("Observation", "c", 1, "x"), toks("other")...)
	put(t, b, ver("Observation", "d", 1, "x"), toks("y2020")...)
	put(t, b, store.Version{Type: "Observation", ID: "d", VID: 2, Updated: at(2), Deleted: true})
	put(t, b, ver("Patient", "a", 1, "x"), toks("y2019")...)
	put(t, b, ver("Observation", "e", 1, "x"), toks("y2020")...)
	put(t, b, ver("Observation", "e", 2, "x"), toks("y2021")...)
	put(t, b, ver("Observation", "f", 1, "x"), toks("other")...)
	update(t, b, func(w store.Writer) error { return w.Reindex("Observation", "f", 1, toks("y2019", "y2019")) })
	// A write that fails leaves what Carried sees as it was.
	failed := errors.New("rolled back")
	if err := b.Update(context.Background(), func(w store.Writer) error {
		if _, err := w.Put(ver("Observation", "c", 2, "x"), toks("y2021")); err != nil {
			return err
		}
		return failed
	}); !errors.Is(err, failed) {
		t.Fatalf("rolled-back Update: %v", err)
	}
	among := toks("y2021", "y2020", "y2019")
	ids := []string{"a", "b", "c", "d", "e", "f", "absent"}
	for i := range 600 { // more ids than one statement may carry
		ids = append(ids, fmt.Sprint("n", i))
	}
	var got map[string][]int
	view(t, b, func(r store.Reader) error {
		var err error
		got, err = r.Carried("Observation", ids, among)
		return err
	})
	want := map[string][]int{"a": {0, 1}, "b": {2}, "e": {0}, "f": {2}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Carried = %v, want %v", got, want)
	}
	view(t, b, func(r store.Reader) error {
		none, err := r.Carried("Observation", ids, nil)
		if err != nil || len(none) != 0 {
			t.Errorf("Carried with no tokens = %v, %v", none, err)
		}
		return nil
	})
}
