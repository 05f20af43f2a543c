package sqlite

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// openBackend opens the store in dir, closed when the test ends.
func openBackend(t *testing.T, dir string) *Backend {
	t.Helper()
	be, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

// putTokens stores Patient/id (version vid) carrying tokens.
func putTokens(t *testing.T, be *Backend, id string, vid int64, tokens ...string) {
	t.Helper()
	var toks []store.Token
	for _, s := range tokens {
		toks = append(toks, store.Token(s))
	}
	err := be.Update(context.Background(), func(w store.Writer) error {
		_, err := w.Put(store.Version{Type: "Patient", ID: id, VID: vid, Updated: time.Now(), Body: []byte("x")}, toks)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func match(t *testing.T, be *Backend, q store.MatchQuery) []string {
	t.Helper()
	var ids []string
	err := be.View(context.Background(), func(r store.Reader) (err error) {
		ids, err = r.Match(q)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestSizesChooseWithoutCounting: a repeated query chooses its driver
// from the sizes counted for the first one; a paging query and a count
// older than sizesTTL count again; answers never depend on the sizes,
// even when they are stale and name the wrong group as the small one.
func TestSizesChooseWithoutCounting(t *testing.T) {
	be := openBackend(t, t.TempDir())
	now := time.Now()
	be.sizes.now = func() time.Time { return now }
	// "few" is on 3 resources, "many" on 200; two carry both.
	for i := range 200 {
		toks := []string{"many"}
		if i < 2 {
			toks = append(toks, "few")
		}
		putTokens(t, be, fmt.Sprintf("p%03d", i), 1, toks...)
	}
	putTokens(t, be, "q000", 1, "few")
	q := store.MatchQuery{Type: "Patient", All: [][]store.Token{{store.Token("many")}, {store.Token("few")}}}
	want := []string{"p000", "p001"}

	if got := match(t, be, q); !slices.Equal(got, want) {
		t.Fatalf("first match: %v, want %v", got, want)
	}
	counted := be.sizes.counted.Load()
	if counted == 0 {
		t.Fatal("the first query counted no group")
	}
	if got := match(t, be, q); !slices.Equal(got, want) {
		t.Fatalf("second match: %v, want %v", got, want)
	}
	if n := be.sizes.counted.Load(); n != counted {
		t.Errorf("the repeated query counted %d groups again, want none", n-counted)
	}

	paged := q
	paged.After = "p000"
	if got := match(t, be, paged); !slices.Equal(got, want[1:]) {
		t.Fatalf("paged match: %v, want %v", got, want[1:])
	}
	if n := be.sizes.counted.Load(); n != counted {
		t.Errorf("a paging query went through the sizes (%d counts recorded)", n-counted)
	}

	// Make the sizes lie: "few" is now on 300 more resources and "many"
	// on none but p001. The stale sizes still pick "few"'s group as the
	// smaller; the answer must be the new one.
	for i := range 200 {
		if i != 1 {
			putTokens(t, be, fmt.Sprintf("p%03d", i), 2, "other")
		}
	}
	for i := range 300 {
		putTokens(t, be, fmt.Sprintf("r%03d", i), 1, "few")
	}
	if got := match(t, be, q); !slices.Equal(got, []string{"p001"}) {
		t.Fatalf("match over stale sizes: %v, want [p001]", got)
	}
	if n := be.sizes.counted.Load(); n != counted {
		t.Errorf("a query within the TTL counted %d groups", n-counted)
	}

	now = now.Add(sizesTTL + time.Millisecond)
	if got := match(t, be, q); !slices.Equal(got, []string{"p001"}) {
		t.Fatalf("match after the TTL: %v, want [p001]", got)
	}
	if n := be.sizes.counted.Load(); n == counted {
		t.Error("a query after the TTL counted nothing: the sizes never expire")
	}
}

// TestSizesAnswerOnlyWhatTheyKnow: a count made up to a small limit that
// reached it does not answer a larger limit; an exact one answers any.
func TestSizesAnswerOnlyWhatTheyKnow(t *testing.T) {
	s := newSizes()
	s.put("a", 64, 64) // at least 64
	s.put("b", 10, 64) // exactly 10
	for _, c := range []struct {
		key    string
		limit  int64
		n      int64
		answer bool
	}{
		{"a", 64, 64, true},
		{"a", 32, 32, true},
		{"a", 512, 0, false},
		{"b", 512, 10, true},
		{"b", 5, 5, true},
		{"c", 64, 0, false},
	} {
		n, ok := s.get(c.key, c.limit)
		if ok != c.answer || ok && n != c.n {
			t.Errorf("get(%s, %d) = %d, %v; want %d, %v", c.key, c.limit, n, ok, c.n, c.answer)
		}
	}
	if sizeKey("P", []store.Token{store.Token("ab"), store.Token("c")}) == sizeKey("P", []store.Token{store.Token("a"), store.Token("bc")}) {
		t.Error("two different groups share a key")
	}
}
