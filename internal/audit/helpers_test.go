package audit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit/internal/memstore"
	"github.com/phivault/phivault/internal/store"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "phivault.test/audit"

// testKeys returns a deterministic-per-run signer and verifier.
func testKeys(t testing.TB, origin string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// testEvent returns a plausible event, different for each i.
func testEvent(i int) *Event {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	inter := []string{"read", "vread", "search-type", "create", "update", "delete"}[r.IntN(6)]
	e := &Event{
		Time:        time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		Interaction: inter,
		Action:      map[string]string{"read": "R", "vread": "R", "search-type": "E", "create": "C", "update": "U", "delete": "D"}[inter],
		Outcome:     Success,
		UserID:      fmt.Sprintf("user-%d", r.IntN(50)),
		Roles:       []string{"clinician"},
		ClientID:    "console",
		SourceIP:    fmt.Sprintf("10.0.%d.%d", r.IntN(255), r.IntN(255)),
		UserAgent:   "Mozilla/5.0",
		AuthMethod:  "password+totp",
		Purpose:     "TREAT",
		Patients:    []string{fmt.Sprintf("p%06d", r.IntN(100000))},
		Entities:    []string{fmt.Sprintf("Observation/o%08d/_history/1", i)},
		Allowed:     true,
		Policies:    []string{"care-team-read"},
	}
	return e
}

// appendLeaves appends events [from, from+n) in transactions of up to 1000.
func appendLeaves(t testing.TB, st store.Backend, from, n int) {
	t.Helper()
	ctx := context.Background()
	for i := from; i < from+n; {
		j := min(from+n, i+1000)
		if err := st.Update(ctx, func(w store.Writer) error {
			for k := i; k < j; k++ {
				if _, err := w.AppendAudit(testEvent(k).Leaf()); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		i = j
	}
}

// buildLog returns a store with n events and a checkpoint after every
// `every` events (and one at the end).
func buildLog(t testing.TB, n, every int, s note.Signer) *memstore.Store {
	t.Helper()
	st := memstore.New()
	cp := NewCheckpointer(st, NewIntegrator(st), s, CheckpointerOptions{})
	for i := 0; i < n; i += every {
		appendLeaves(t, st, i, min(every, n-i))
		if _, err := cp.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// verifyStore runs Verify in a View.
func verifyStore(t testing.TB, st store.Backend, v note.Verifier, against ...[]byte) *Report {
	t.Helper()
	var rep *Report
	if err := st.View(context.Background(), func(r store.Reader) (err error) {
		rep, err = Verify(context.Background(), r, v, against...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return rep
}

// mth is the RFC 9162 Merkle tree hash, computed naively, as a reference.
func mth(leaves [][]byte) []byte {
	switch len(leaves) {
	case 0:
		return hasher.EmptyRoot()
	case 1:
		return hasher.HashLeaf(leaves[0])
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return hasher.HashChildren(mth(leaves[:k]), mth(leaves[k:]))
}
