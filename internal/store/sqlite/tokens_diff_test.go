package sqlite

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// rowsOf returns the idx tokens of Patient/id, sorted.
func rowsOf(t *testing.T, be *Backend, id string) []string {
	t.Helper()
	var out []string
	err := be.View(context.Background(), func(r store.Reader) error {
		rows, err := r.(*reader).db.query(context.Background(), `SELECT token FROM idx WHERE rtype = 'Patient' AND rid = ?`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var tok []byte
			if err := rows.Scan(&tok); err != nil {
				return err
			}
			out = append(out, string(tok))
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func tokenNames(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("t%03d", i))
	}
	return out
}

// TestUpdateReplacesTokensByDifference: an update writes and deletes
// only the tokens that changed, across more than one statement's worth
// (tokenChunk) of each, and leaves another resource's rows of the same
// tokens alone; a delete removes them all, and a version after the
// delete starts from none.
func TestUpdateReplacesTokensByDifference(t *testing.T) {
	be := openBackend(t, t.TempDir())
	putTokens(t, be, "a", 1, tokenNames(0, 150)...)
	putTokens(t, be, "b", 1, tokenNames(0, 150)...)
	putTokens(t, be, "a", 2, tokenNames(70, 230)...) // 70 gone, 80 new
	if got, want := rowsOf(t, be, "a"), tokenNames(70, 230); !slices.Equal(got, want) {
		t.Errorf("after the update a has %d rows %v..., want %d", len(got), got[:min(3, len(got))], len(want))
	}
	if got := rowsOf(t, be, "b"); !slices.Equal(got, tokenNames(0, 150)) {
		t.Errorf("b's rows changed with a's update: %d rows", len(got))
	}
	q := func(tok string) []string {
		return match(t, be, store.MatchQuery{Type: "Patient", All: [][]store.Token{{store.Token(tok)}}})
	}
	if got := q("t010"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("a removed token matches %v, want [b]", got)
	}
	if got := q("t200"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("an added token matches %v, want [a]", got)
	}
	if got := q("t100"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("a kept token matches %v, want [a b]", got)
	}

	err := be.Update(context.Background(), func(w store.Writer) error {
		_, err := w.Put(store.Version{Type: "Patient", ID: "a", VID: 3, Updated: time.Now(), Deleted: true}, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, be, "a"); len(got) != 0 {
		t.Errorf("after the delete a has %d rows, want none", len(got))
	}
	putTokens(t, be, "a", 4, "t001", "t999")
	if got := rowsOf(t, be, "a"); !slices.Equal(got, []string{"t001", "t999"}) {
		t.Errorf("after the new version a has rows %v, want [t001 t999]", got)
	}
	if got := rowsOf(t, be, "b"); len(got) != 150 {
		t.Errorf("b has %d rows, want 150", len(got))
	}
}

func TestDiffTokens(t *testing.T) {
	set := func(ss ...string) []store.Token {
		var out []store.Token
		for _, s := range ss {
			out = append(out, store.Token(s))
		}
		return out
	}
	for _, c := range []struct{ a, b, onlyA, onlyB []store.Token }{
		{nil, nil, nil, nil},
		{set("a", "b"), nil, set("a", "b"), nil},
		{nil, set("a"), nil, set("a")},
		{set("a", "c", "e"), set("b", "c", "d", "f"), set("a", "e"), set("b", "d", "f")},
		{set("\x00", "a"), set("\x00\x00", "a"), set("\x00"), set("\x00\x00")},
	} {
		onlyA, onlyB := diffTokens(c.a, c.b)
		if fmt.Sprint(onlyA) != fmt.Sprint(c.onlyA) || fmt.Sprint(onlyB) != fmt.Sprint(c.onlyB) {
			t.Errorf("diffTokens(%q, %q) = %q, %q; want %q, %q", c.a, c.b, onlyA, onlyB, c.onlyA, c.onlyB)
		}
	}
}
