package sqlite

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/phivault/phivault/internal/store"
)

func tokenGroup(prefix string, from, to int) []store.Token {
	var g []store.Token
	for k := from; k < to; k++ {
		g = append(g, store.Token(fmt.Sprintf("%s:%d", prefix, k)))
	}
	return g
}

// TestMatchReadsLargeGroupsIntoSets: two large groups of about the same
// size (the bounds of a date range) are answered with the other group read
// into a set; a large group far bigger than the driver, or next to a
// single-token driver whose page stops early, is probed per candidate;
// all give the exact intersection, page by page and counted.
func TestMatchReadsLargeGroupsIntoSets(t *testing.T) {
	be := openBackend(t, t.TempDir())
	const n = 300
	for i := range n {
		putTokens(t, be, fmt.Sprintf("p%03d", i), 1, fmt.Sprintf("a:%d", i%20), fmt.Sprintf("b:%d", i%30), fmt.Sprintf("g:%d", i%3), fmt.Sprintf("id:%d", i))
	}
	for _, c := range []struct {
		name    string
		all     [][]store.Token
		want    func(i int) bool
		useSets bool
	}{
		{"bounds", [][]store.Token{tokenGroup("a", 0, 10), tokenGroup("b", 0, 15)}, func(i int) bool { return i%20 < 10 && i%30 < 15 }, true},
		{"small driver", [][]store.Token{tokenGroup("a", 0, 10), {store.Token("id:7"), store.Token("id:8")}}, func(i int) bool { return (i == 7 || i == 8) && i%20 < 10 }, false},
		{"one-token driver", [][]store.Token{tokenGroup("a", 0, 10), {store.Token("g:1")}}, func(i int) bool { return i%3 == 1 && i%20 < 10 }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var want []string
			for i := range n {
				if c.want(i) {
					want = append(want, fmt.Sprintf("p%03d", i))
				}
			}
			q := store.MatchQuery{Type: "Patient", All: c.all}
			err := be.View(context.Background(), func(r store.Reader) error {
				page := q
				page.Limit = 7
				p, ok, err := r.(*reader).driver(page, false)
				if err != nil || !ok {
					return fmt.Errorf("driver: %v, %v", ok, err)
				}
				if got := slices.Contains(p.sets, true); got != c.useSets {
					t.Errorf("plan of a page %+v: reads a group into a set = %v, want %v", p, got, c.useSets)
				}
				if p, _, _ := r.(*reader).driver(q, true); !slices.Contains(p.sets, true) != (c.name == "small driver") {
					t.Errorf("plan of a count %+v: sets only where the group is within %dx the driver", p, setFactor)
				}
				got, err := r.Match(q)
				if err != nil {
					return err
				}
				if !slices.Equal(got, want) {
					t.Errorf("Match = %v, want %v", got, want)
				}
				if n, err := r.Count(q); err != nil || n != len(want) {
					t.Errorf("Count = %d, %v; want %d", n, err, len(want))
				}
				var paged []string
				for pq := q; ; {
					pq.Limit = 7
					page, err := r.Match(pq)
					if err != nil {
						return err
					}
					paged = append(paged, page...)
					if len(page) < pq.Limit {
						break
					}
					pq.After = page[len(page)-1]
				}
				if !slices.Equal(paged, want) {
					t.Errorf("paged by 7: %v, want %v", paged, want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
