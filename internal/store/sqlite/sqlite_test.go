package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
	"github.com/phivault/phivault/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend {
		b, err := sqlite.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// TestGroupCommit checks that concurrent Updates share commits, and that a
// panicking fn only affects its own caller.
func TestGroupCommit(t *testing.T) {
	b, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n = 256
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := b.Update(context.Background(), func(w store.Writer) error {
				_, err := w.Put(store.Version{Type: "Patient", ID: fmt.Sprint(i), VID: 1, Updated: time.Now(), Body: []byte("x")}, nil)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	st := b.Stats()
	if st.Updates != n || st.Commits >= n/2 {
		t.Errorf("%d updates in %d commits; want %d in far fewer", st.Updates, st.Commits, n)
	}
	t.Logf("%d concurrent updates in %d commits", st.Updates, st.Commits)

	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the fn's panic", p)
			}
		}()
		_ = b.Update(context.Background(), func(w store.Writer) error {
			if err := w.SetMeta("panic", []byte("x")); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	err = b.View(context.Background(), func(r store.Reader) error {
		_, err := r.Meta("panic")
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a panicking fn's write was kept: %v", err)
	}
	if err := b.Update(context.Background(), func(w store.Writer) error { return w.SetMeta("after", nil) }); err != nil {
		t.Errorf("Update after a panic: %v", err)
	}
}

// TestReopen checks data and schema survive Close and Open.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	b, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(context.Background(), func(w store.Writer) error { return w.SetMeta("k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err = sqlite.Open(dir); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.View(context.Background(), func(r store.Reader) error {
		v, err := r.Meta("k")
		if err == nil && string(v) != "v" {
			err = fmt.Errorf("Meta = %q", v)
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
}

// TestAuditRowsCompressed: audit leaves are stored compressed (the
// format store.PackLeaf defines, the one every backend and the backup
// share), and rows written before compression still read back.
func TestAuditRowsCompressed(t *testing.T) {
	dir := t.TempDir()
	b, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const leaf = `{"action":"R","agent":[{"network":{"address":"10.1.2.%d","type":"2"},"requestor":true,"role":[{"coding":[{"code":"nurse","system":"urn:phivault:role"}]}],"who":{"identifier":{"system":"urn:phivault:user","value":"user-%d"}}}],"entity":[{"role":{"code":"1","system":"http://terminology.hl7.org/CodeSystem/object-role"},"type":{"code":"1","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"},"what":{"reference":"Patient/p%06d"}}],"outcome":"0","recorded":"2026-11-02T08:14:%02d.120334Z","resourceType":"AuditEvent","subtype":[{"code":"read","system":"http://hl7.org/fhir/restful-interaction"}],"type":{"code":"rest","display":"RESTful Operation","system":"http://terminology.hl7.org/CodeSystem/audit-event-type"}}`
	var want [][]byte
	raw := 0
	if err := b.Update(context.Background(), func(w store.Writer) error {
		for i := range 100 {
			l := []byte(fmt.Sprintf(leaf, i, i%7, i*31, i%60))
			want = append(want, l)
			raw += len(l)
			if _, err := w.AppendAudit(l); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var stored int
	if err := db.QueryRow(`SELECT sum(length(leaf)) FROM audit`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored*3 > raw {
		t.Errorf("%d bytes of leaves stored in %d, want under a third", raw, stored)
	}
	t.Logf("%d bytes of leaves stored in %d", raw, stored)
	// A row as an earlier version wrote it: the leaf itself.
	if _, err := db.Exec(`INSERT INTO audit (idx, leaf) VALUES (100, ?)`, want[7]); err != nil {
		t.Fatal(err)
	}
	want = append(want, want[7])
	if err := b.View(context.Background(), func(r store.Reader) error {
		got, err := r.AuditLeaves(0, 101)
		if err != nil {
			return err
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Errorf("leaf %d read back as %q", i, got[i])
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
