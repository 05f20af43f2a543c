package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// TestTokensetMigration opens a database written before the tokset table
// existed (schema version 1): the migration fills it from the idx rows, so
// Carried answers as it did before, and writes after it keep both in step.
func TestTokensetMigration(t *testing.T) {
	dir := t.TempDir()
	b, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok := func(s string) store.Token { return store.Token(s) }
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	puts := []struct {
		id   string
		vid  int64
		del  bool
		toks []store.Token
	}{
		{"a", 1, false, []store.Token{tok("y2020"), tok("y2021"), tok("other")}},
		{"b", 1, false, []store.Token{tok("y2019")}},
		{"b", 2, false, []store.Token{tok("y2020")}},
		{"c", 1, false, []store.Token{tok("y2021")}},
		{"c", 2, true, nil},
		{"d", 1, false, []store.Token{tok("other")}},
	}
	for _, p := range puts {
		v := store.Version{Type: "Observation", ID: p.id, VID: p.vid, Updated: at, Deleted: p.del, Body: []byte("x")}
		if err := b.Update(context.Background(), func(w store.Writer) error { _, err := w.Put(v, p.toks); return err }); err != nil {
			t.Fatal(err)
		}
	}
	ids := []string{"a", "b", "c", "d", "e"}
	among := []store.Token{tok("y2021"), tok("y2020"), tok("y2019")}
	carried := func(b store.Backend) string {
		t.Helper()
		var got map[string][]int
		if err := b.View(context.Background(), func(r store.Reader) error {
			var err error
			got, err = r.Carried("Observation", ids, among)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(got)
	}
	const want = "map[a:[0 1] b:[1]]"
	if got := carried(b); got != want {
		t.Fatalf("before: Carried = %s, want %s", got, want)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// Back to schema version 1.
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TABLE tokset`, `UPDATE schema_version SET version = 1`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	db.Close()

	if b, err = sqlite.Open(dir); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := carried(b); got != want {
		t.Errorf("after the migration: Carried = %s, want %s", got, want)
	}
	v := store.Version{Type: "Observation", ID: "d", VID: 2, Updated: at, Body: []byte("x")}
	if err := b.Update(context.Background(), func(w store.Writer) error {
		_, err := w.Put(v, []store.Token{tok("y2019"), tok("y2021")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := carried(b), "map[a:[0 1] b:[1] d:[0 2]]"; got != want {
		t.Errorf("after a write on the migrated store: Carried = %s, want %s", got, want)
	}
}

// TestLongToken: a token too long for a token set is refused and nothing
// is written.
func TestLongToken(t *testing.T) {
	b, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	v := store.Version{Type: "Observation", ID: "a", VID: 1, Updated: time.Now(), Body: []byte("x")}
	err = b.Update(context.Background(), func(w store.Writer) error {
		_, err := w.Put(v, []store.Token{make(store.Token, 256)})
		return err
	})
	if err == nil {
		t.Fatal("a 256-byte token was taken")
	}
	if err := b.View(context.Background(), func(r store.Reader) error {
		_, err := r.Current("Observation", "a")
		if err == nil {
			return fmt.Errorf("the version was stored")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
