package audit

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/phivault/phivault/internal/audit/internal/memstore"
	"github.com/phivault/phivault/internal/store"
	"golang.org/x/mod/sumdb/note"
)

const tamperEvery = 2_500 // a checkpoint every tamperEvery leaves

// tamperLeaves is the size of the tampered log: 100,000 events, or 10,000
// with -short or -race (set by sharedTamperLog).
var tamperLeaves = 100_000

var tamperLog struct {
	once sync.Once
	st   *memstore.Store
	s    note.Signer
	v    note.Verifier
}

// sharedTamperLog builds the 100,000-event log once per test binary.
func sharedTamperLog(t *testing.T) (*memstore.Store, note.Verifier) {
	tamperLog.once.Do(func() {
		if testing.Short() || raceEnabled {
			tamperLeaves = 10_000
		}
		tamperLog.s, tamperLog.v = testKeys(t, testOrigin)
		tamperLog.st = buildLog(t, tamperLeaves, tamperEvery, tamperLog.s)
	})
	if tamperLog.st == nil {
		t.Fatal("building the shared log failed")
	}
	return tamperLog.st, tamperLog.v
}

// trials is 100 per tampering kind (3 with -short or -race);
// PHIVAULT_TAMPER_TRIALS overrides it. 100 trials on 100,000 events are
// 500 full verifications: allow -timeout 30m on a slow machine.
func trials() int {
	if n, err := strconv.Atoi(os.Getenv("PHIVAULT_TAMPER_TRIALS")); err == nil && n > 0 {
		return n
	}
	if testing.Short() || raceEnabled {
		return 3
	}
	return 100
}

// TestTamper changes the stored leaves the way someone with write access
// to the database could, and requires Verify to catch every change and
// name the first changed entry, in every trial.
func TestTamper(t *testing.T) {
	base, v := sharedTamperLog(t)
	if rep := verifyStore(t, base, v); !rep.OK() || rep.Verified != uint64(tamperLeaves) || rep.Checkpoints != tamperLeaves/tamperEvery {
		t.Fatalf("untouched log: %v, verified %d, %d checkpoints", rep.Err(), rep.Verified, rep.Checkpoints)
	}
	_, attacker := testKeys(t, testOrigin)
	_ = attacker
	cases := []struct {
		name string
		// tamper changes st and returns the leaf index Verify must name.
		tamper func(st *memstore.Store, rng *rand.Rand) int64
	}{
		{"flip-bit", func(st *memstore.Store, rng *rand.Rand) int64 {
			k := rng.IntN(tamperLeaves)
			st.Tamper(func(l [][]byte, _ map[string][]byte) [][]byte {
				b := bytes.Clone(l[k])
				b[rng.IntN(len(b))] ^= 1 << rng.IntN(8)
				l[k] = b
				return l
			})
			return int64(k)
		}},
		{"delete", func(st *memstore.Store, rng *rand.Rand) int64 {
			k := rng.IntN(tamperLeaves)
			st.Tamper(func(l [][]byte, _ map[string][]byte) [][]byte {
				return append(l[:k:k], l[k+1:]...)
			})
			return int64(k)
		}},
		{"swap", func(st *memstore.Store, rng *rand.Rand) int64 {
			i, j := rng.IntN(tamperLeaves), rng.IntN(tamperLeaves)
			for i == j {
				j = rng.IntN(tamperLeaves)
			}
			st.Tamper(func(l [][]byte, _ map[string][]byte) [][]byte {
				l[i], l[j] = l[j], l[i]
				return l
			})
			return int64(min(i, j))
		}},
		{"truncate", func(st *memstore.Store, rng *rand.Rand) int64 {
			k := rng.IntN(tamperLeaves)
			st.Tamper(func(l [][]byte, _ map[string][]byte) [][]byte { return l[:k] })
			return int64(k)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(len(tc.name)), 99))
			caught := 0
			for trial := range trials() {
				st := base.Clone()
				want := tc.tamper(st, rng)
				rep := verifyStore(t, st, v)
				if rep.OK() {
					t.Errorf("trial %d: tampering at %d not detected", trial, want)
					continue
				}
				if got := rep.Problems[0]; got.Index != want {
					t.Errorf("trial %d: first problem %v, want leaf %d named", trial, got, want)
					continue
				}
				caught++
			}
			t.Logf("%s: detected and named in %d of %d trials", tc.name, caught, trials())
		})
	}
}

// TestTamperResign rewrites a leaf, rebuilds the tree and re-signs every
// later checkpoint with another key under the same name: Verify must name
// the first checkpoint whose signature fails.
func TestTamperResign(t *testing.T) {
	base, v := sharedTamperLog(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	forged, _ := testKeys(t, testOrigin)
	caught := 0
	for trial := range trials() {
		st := base.Clone()
		k := rng.IntN(tamperLeaves)
		st.Tamper(func(l [][]byte, meta map[string][]byte) [][]byte {
			ev := testEvent(k)
			ev.UserID = "someone-else"
			l[k] = ev.Leaf()
			for key := range meta {
				delete(meta, key) // the attacker rebuilds the tree from scratch
			}
			return l
		})
		if _, err := NewIntegrator(st).Integrate(ctx); err != nil {
			t.Fatal(err)
		}
		p := NewProver(st)
		firstForged := uint64(0)
		for size := uint64(tamperEvery); size <= uint64(tamperLeaves); size += tamperEvery {
			signer := tamperLog.s
			if size > uint64(k) {
				signer = forged
				if firstForged == 0 {
					firstForged = size
				}
			}
			root, err := p.RootAt(ctx, size)
			if err != nil {
				t.Fatal(err)
			}
			n, err := SignCheckpoint(Checkpoint{Origin: testOrigin, Size: size, Root: root}, signer)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Update(ctx, func(w store.Writer) error { return w.SetMeta(checkpointKey(size), n) }); err != nil {
				t.Fatal(err)
			}
		}
		rep := verifyStore(t, st, v)
		if got := rep.Problems; len(got) == 0 || got[0].Kind != KindSignature || got[0].Checkpoint != firstForged {
			t.Errorf("trial %d: leaf %d rewritten and re-signed from %d: problems %v", trial, k, firstForged, got)
			continue
		}
		caught++
	}
	t.Logf("re-sign: detected and named in %d of %d trials", caught, trials())
}

// TestRollback saves checkpoints outside (a witness file), then replaces
// the log by an older copy plus new events, all signed with the real key:
// the stored checkpoints are self-consistent, only VerifyAgainst sees it.
func TestRollback(t *testing.T) {
	ctx := context.Background()
	s, v := testKeys(t, testOrigin)
	wfile := filepath.Join(t.TempDir(), "witness")
	st := memstore.New()
	cp := NewCheckpointer(st, NewIntegrator(st), s, CheckpointerOptions{Witnesses: []Witness{&FileWitness{Path: wfile}}})
	var old *memstore.Store
	for i := 0; i < 10_000; i += 1000 {
		appendLeaves(t, st, i, 1000)
		if _, err := cp.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		if i+1000 == 5000 {
			old = st.Clone() // the backup that will be restored
		}
	}
	if rep, err := verifyAgainstStore(t, st, v, wfile); err != nil || !rep.OK() {
		t.Fatalf("original log against its witness: %v %v", err, rep.Err())
	}

	// Restored old copy, no new events.
	rep, err := verifyAgainstStore(t, old, v, wfile)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Problems[0].Kind != KindRollback || rep.Problems[0].Index != 5000 {
		t.Fatalf("old copy: %v", rep.Problems)
	}

	// Restored old copy plus new events, checkpointed by the real key.
	cp2 := NewCheckpointer(old, NewIntegrator(old), s, CheckpointerOptions{})
	for i := 5000; i < 12_000; i += 1000 {
		appendLeaves(t, old, i+1_000_000, 1000) // different events
		if _, err := cp2.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if rep := verifyStore(t, old, v); !rep.OK() {
		t.Fatalf("the forked log should be self-consistent: %v", rep.Err())
	}
	rep, err = verifyAgainstStore(t, old, v, wfile)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Problems[0].Kind != KindRollback || rep.Problems[0].Index != 5000 || rep.Problems[0].Checkpoint != 6000 {
		t.Fatalf("old copy plus new events: %v", rep.Problems)
	}
	t.Logf("rollback reported as: %v", rep.Problems[0])
}

func TestCheckLeaf(t *testing.T) {
	if err := checkLeaf(testEvent(1).Leaf()); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{}`, `not json`, `{"resourceType":"Patient"}`, `{"resourceType":"AuditEvent","type":{"code":"rest"},"agent":[{}],"recorded":"yesterday"}`} {
		if err := checkLeaf([]byte(bad)); err == nil {
			t.Errorf("checkLeaf(%s) accepted", bad)
		}
	}
	_ = fmt.Sprint()
}
