package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/phivault/phivault/internal/store"
)

// testReindex: Reindex replaces a live version's tokens and nothing else
// (no new version, no history entry, the body and Seq unchanged), and
// refuses a version that is not the live one.
func testReindex(t *testing.T, b *closer) {
	v1 := put(t, b, ver("Observation", "o", 1, "b1"), toks("old")...)
	v2 := put(t, b, ver("Observation", "o", 2, "b2"), toks("old", "kept")...)
	put(t, b, ver("Observation", "gone", 1, "g"), toks("old")...)
	put(t, b, store.Version{Type: "Observation", ID: "gone", VID: 2, Updated: at(3), Deleted: true})
	q := func(tok string) store.MatchQuery {
		return store.MatchQuery{Type: "Observation", All: [][]store.Token{group(tok)}}
	}
	update(t, b, func(w store.Writer) error { return w.Reindex("Observation", "o", 2, toks("new", "kept")) })
	checkMatch(t, b, q("old"), nil)
	checkMatch(t, b, q("new"), []string{"o"})
	checkMatch(t, b, q("kept"), []string{"o"})
	if d := sameVersion(current(t, b, "Observation", "o"), v2); d != "" {
		t.Errorf("reindex changed the current version: %s", d)
	}
	view(t, b, func(r store.Reader) error {
		h, err := r.History(store.HistoryQuery{Type: "Observation", ID: "o"})
		if err != nil {
			return err
		}
		if len(h) != 2 || h[1].Seq != v1.Seq || h[0].Seq != v2.Seq {
			t.Errorf("history after reindex: %d versions, want the 2 written", len(h))
		}
		return nil
	})
	for _, c := range []struct {
		id  string
		vid int64
	}{{"o", 1}, {"o", 3}, {"gone", 2}, {"gone", 1}, {"absent", 1}} {
		var err error
		_ = b.Update(context.Background(), func(w store.Writer) error {
			err = w.Reindex("Observation", c.id, c.vid, toks("bad"))
			return nil
		})
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("Reindex(%s, %d): %v, want ErrConflict", c.id, c.vid, err)
		}
	}
	checkMatch(t, b, q("bad"), nil)
	// The next Put replaces reindexed tokens like any others.
	put(t, b, ver("Observation", "o", 3, "b3"), toks("third")...)
	checkMatch(t, b, q("new"), nil)
	checkMatch(t, b, q("third"), []string{"o"})
}

// testReindexRacesPut: a Reindex of version n and a Put of version n+1
// run concurrently; whatever the order, the tokens left are the Put's when
// the Put committed after the reindex, and the Reindex conflicts when the
// Put committed first. Never a mix, never the reindex's tokens on n+1.
func testReindexRacesPut(t *testing.T, b *closer) {
	const n = 20
	for i := range n {
		put(t, b, ver("Patient", fmt.Sprint("p", i), 1, "a"), toks("v1")...)
	}
	var wg sync.WaitGroup
	for i := range n {
		id := fmt.Sprint("p", i)
		wg.Add(2)
		go func() {
			defer wg.Done()
			err := b.Update(context.Background(), func(w store.Writer) error { return w.Reindex("Patient", id, 1, toks("r1")) })
			if err != nil && !errors.Is(err, store.ErrConflict) {
				t.Errorf("reindex %s: %v", id, err)
			}
		}()
		go func() {
			defer wg.Done()
			err := b.Update(context.Background(), func(w store.Writer) error {
				_, err := w.Put(ver("Patient", id, 2, "b"), toks("v2"))
				return err
			})
			if err != nil {
				t.Errorf("put %s: %v", id, err)
			}
		}()
	}
	wg.Wait()
	q := func(tok string) store.MatchQuery {
		return store.MatchQuery{Type: "Patient", All: [][]store.Token{group(tok)}}
	}
	checkMatch(t, b, q("r1"), nil)
	checkMatch(t, b, q("v1"), nil)
	if got := match(t, b, q("v2")); len(got) != n {
		t.Errorf("%d of %d resources carry their last Put's tokens after racing reindexes", len(got), n)
	}
}
