// Package storetest is the conformance suite for store.Backend. Every
// backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Backend { ... })
//	}
//
// The suite uses only the store interface, so it holds every backend to the
// same contracts. Where store.go leaves a detail open the suite pins the
// behaviour callers rely on, and says so in the subtest.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// Run runs the conformance suite. open must return a new, empty backend for
// each call; the suite closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b *closer)
	}{
		{"PutSequencing", testPutSequencing},
		{"PutConcurrentOneWinner", testPutConcurrent},
		{"DeleteMarker", testDeleteMarker},
		{"CurrentMany", testCurrentMany},
		{"GetOldVersions", testGetOldVersions},
		{"History", testHistory},
		{"HistoryPaging", testHistoryPaging},
		{"Match", testMatch},
		{"MatchPaging", testMatchPaging},
		{"MatchTypeScoped", testMatchTypeScoped},
		{"MatchTokensReplaced", testMatchTokensReplaced},
		{"MatchChangedInOneUpdate", testMatchChangedInOneUpdate},
		{"MatchBinaryTokens", testMatchBinaryTokens},
		{"Carried", testCarried},
		{"Reindex", testReindex},
		{"ReindexRacesPut", testReindexRacesPut},
		{"Meta", testMeta},
		{"MetaPrefix", testMetaPrefix},
		{"Audit", testAudit},
		{"AuditConcurrent", testAuditConcurrent},
		{"AuditBatch", testAuditBatch},
		{"UpdateError", testUpdateError},
		{"UpdateAtomicConcurrent", testUpdateAtomicConcurrent},
		{"ReadYourWrites", testReadYourWrites},
		{"ViewSnapshot", testViewSnapshot},
		{"ContextCanceled", testContextCanceled},
		{"Closed", testClosed},
		{"BigBody", testBigBody},
		{"UnusualIDs", testUnusualIDs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &closer{Backend: open(t)}
			t.Cleanup(func() {
				if err := c.close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, c)
		})
	}
}

// closer closes its backend at most once.
type closer struct {
	store.Backend
	once sync.Once
	err  error
}

func (c *closer) close() error {
	c.once.Do(func() { c.err = c.Backend.Close() })
	return c.err
}

// base is a microsecond-precision instant; versions are written at base+n s.
var base = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func at(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }

func ver(typ, id string, vid int64, body string) store.Version {
	return store.Version{Type: typ, ID: id, VID: vid, Updated: at(int(vid)), Body: []byte(body)}
}

func toks(ss ...string) []store.Token {
	out := make([]store.Token, len(ss))
	for i, s := range ss {
		out[i] = store.Token(s)
	}
	return out
}

func update(t testing.TB, b store.Backend, fn func(w store.Writer) error) {
	t.Helper()
	if err := b.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t testing.TB, b store.Backend, fn func(r store.Reader) error) {
	t.Helper()
	if err := b.View(context.Background(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// put stores one version in its own Update and returns it with Seq set.
func put(t testing.TB, b store.Backend, v store.Version, tokens ...store.Token) store.Version {
	t.Helper()
	var out store.Version
	update(t, b, func(w store.Writer) error {
		var err error
		out, err = w.Put(v, tokens)
		return err
	})
	return out
}

func current(t testing.TB, b store.Backend, typ, id string) store.Version {
	t.Helper()
	var v store.Version
	view(t, b, func(r store.Reader) error {
		var err error
		v, err = r.Current(typ, id)
		return err
	})
	return v
}

func match(t testing.TB, b store.Backend, q store.MatchQuery) []string {
	t.Helper()
	var ids []string
	view(t, b, func(r store.Reader) error {
		var err error
		ids, err = r.Match(q)
		return err
	})
	return ids
}

// sameVersion reports how got differs from want ("" if not at all),
// treating nil and empty bodies alike.
func sameVersion(got, want store.Version) string {
	switch {
	case got.Type != want.Type || got.ID != want.ID || got.VID != want.VID:
		return fmt.Sprintf("got %s/%s/%d, want %s/%s/%d", got.Type, got.ID, got.VID, want.Type, want.ID, want.VID)
	case !got.Updated.Equal(want.Updated) || got.Updated.Location() != time.UTC:
		return fmt.Sprintf("Updated = %v, want %v (UTC)", got.Updated, want.Updated)
	case got.Deleted != want.Deleted:
		return fmt.Sprintf("Deleted = %v, want %v", got.Deleted, want.Deleted)
	case want.Seq != 0 && got.Seq != want.Seq:
		return fmt.Sprintf("Seq = %d, want %d", got.Seq, want.Seq)
	case !bytes.Equal(got.Body, want.Body):
		return fmt.Sprintf("Body = %d bytes %.40q, want %d bytes %.40q", len(got.Body), got.Body, len(want.Body), want.Body)
	}
	return ""
}

func eqStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var errTest = errors.New("storetest: fn failed on purpose")
