package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/phivault/phivault/internal/store"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// ErrTampered is wrapped by Report.Err when verification found a problem.
var ErrTampered = errors.New("audit: log failed verification")

// Kinds of Problem.
const (
	KindLeaf      = "leaf"      // a leaf is not an AuditEvent
	KindSignature = "signature" // a checkpoint is malformed or not signed by the key
	KindMismatch  = "mismatch"  // recomputed root differs from a stored signed checkpoint
	KindMissing   = "missing"   // the log is shorter than a signed checkpoint (truncated)
	KindRollback  = "rollback"  // the log does not extend a checkpoint saved outside
	KindRows      = "rows"      // the store's leaf rows are not dense
)

// Problem is one finding of Verify.
type Problem struct {
	Kind string
	// Index is the first leaf concerned: the leaf that differs, or the
	// first missing one; -1 when the problem concerns a checkpoint only.
	Index int64
	// Checkpoint is the size of the checkpoint concerned, 0 if none.
	Checkpoint uint64
	Detail     string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Index >= 0 {
		fmt.Fprintf(&b, "leaf %d: ", p.Index)
	}
	if p.Checkpoint > 0 {
		fmt.Fprintf(&b, "checkpoint %d: ", p.Checkpoint)
	}
	fmt.Fprintf(&b, "%s: %s", p.Kind, p.Detail)
	return b.String()
}

// pos orders problems by the first leaf they concern.
func (p Problem) pos() int64 {
	if p.Index >= 0 {
		return p.Index
	}
	return int64(p.Checkpoint) - 1
}

// Report is the outcome of Verify.
type Report struct {
	Leaves      uint64 // leaves read from the store
	Checkpoints int    // stored checkpoints whose signature verified
	Verified    uint64 // leaves [0, Verified) match a signed root
	Root        []byte // recomputed root of all leaves read
	// Problems, ordered by the first leaf they concern: Problems[0] is the
	// first bad entry.
	Problems []Problem
}

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Err returns nil if the log verified, or an error wrapping ErrTampered
// that names the first bad entry.
func (r *Report) Err() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("%w: %s (%d problems)", ErrTampered, r.Problems[0], len(r.Problems))
}

func (r *Report) add(p Problem) { r.Problems = append(r.Problems, p) }

// target is a signed root the recomputed tree must match.
type target struct {
	size    uint64
	root    []byte
	against bool // from outside the store (VerifyAgainst)
}

// VerifyAgainst is Verify with the checkpoints of a file saved outside the
// data directory (a FileWitness file or a single saved checkpoint): the log
// must extend every one of them, which detects a rollback of the whole log
// to an older copy (with or without new events).
func VerifyAgainst(ctx context.Context, r store.Reader, v note.Verifier, checkpointFile string) (*Report, error) {
	data, err := os.ReadFile(checkpointFile)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	notes, err := SplitNotes(data)
	if err != nil {
		return nil, err
	}
	if len(notes) == 0 {
		return nil, fmt.Errorf("%w: %s holds no checkpoint", ErrBadCheckpoint, checkpointFile)
	}
	return Verify(ctx, r, v, notes...)
}

// Verify recomputes the Merkle tree from every leaf in r and checks it
// against the signed checkpoints: every stored checkpoint must carry a
// valid signature by v and, at its size, the root recomputed from the
// leaves; a checkpoint beyond the end of the log means the log was
// truncated. Checkpoints that all match the one recomputed tree are
// mutually consistent by construction. Every leaf must be an AuditEvent.
// against are further signed checkpoints, kept outside the store, that
// the log must extend.
//
// When a root differs, Verify names the first leaf that differs if the
// stored tiles still hold the hashes the signed root commits to (an
// attacker who edited leaf rows only); otherwise it names the interval
// between the last matching and the first differing checkpoint.
//
// The error is for failures to read the store; findings are in the Report.
func Verify(ctx context.Context, r store.Reader, v note.Verifier, against ...[]byte) (*Report, error) {
	rep := &Report{}
	var targets []target
	kvs, err := r.MetaPrefix(prefixCheckpt)
	if err != nil {
		return nil, fmt.Errorf("audit: verify: %w", err)
	}
	for _, kv := range kvs {
		size, _ := strconv.ParseUint(strings.TrimPrefix(kv.Key, prefixCheckpt), 10, 64)
		c, err := OpenCheckpoint(kv.Value, v)
		switch {
		case err != nil:
			rep.add(Problem{Kind: KindSignature, Index: -1, Checkpoint: size, Detail: fmt.Sprintf("stored checkpoint %q: %v", kv.Key, err)})
		case c.Size != size:
			rep.add(Problem{Kind: KindSignature, Index: -1, Checkpoint: size, Detail: fmt.Sprintf("stored under %q but signs size %d", kv.Key, c.Size)})
		default:
			rep.Checkpoints++
			targets = append(targets, target{size: c.Size, root: c.Root})
		}
	}
	for i, msg := range against {
		c, err := OpenCheckpoint(msg, v)
		if err != nil {
			rep.add(Problem{Kind: KindSignature, Index: -1, Detail: fmt.Sprintf("saved checkpoint #%d: %v", i+1, err)})
			continue
		}
		targets = append(targets, target{size: c.Size, root: c.Root, against: true})
	}
	sort.SliceStable(targets, func(i, j int) bool { return targets[i].size < targets[j].size })

	n, err := r.AuditSize()
	if err != nil {
		return nil, fmt.Errorf("audit: verify: %w", err)
	}
	f := newFolder(rep, targets)
	if err := stream(ctx, r, n, f); err != nil {
		return nil, err
	}
	f.finish()
	for _, l := range f.locates {
		if err := locate(ctx, r, l, rep); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].pos() < rep.Problems[j].pos() })
	return rep, nil
}

// folder consumes leaf hashes in order and checks roots at target sizes.
type folder struct {
	rep     *Report
	targets []target
	rng     *compact.Range
	// good[s] is the last point (size and compact range) where a target of
	// source s (0: stored, 1: against) matched, and whether a mismatch of
	// that source was already sent to locate.
	good    [2]goodPoint
	locates []locateReq
}

type goodPoint struct {
	size    uint64
	hashes  [][]byte
	located bool
}

type locateReq struct {
	from    goodPoint
	target  target
	missing bool // the log ends before target.size
}

func newFolder(rep *Report, targets []target) *folder {
	f := &folder{rep: rep, targets: targets, rng: rangeFactory.NewEmptyRange(0)}
	f.check()
	return f
}

func (f *folder) add(leafHash []byte) {
	if err := f.rng.Append(leafHash, nil); err != nil {
		panic(err) // Append cannot fail on a range that starts at 0
	}
	f.check()
}

// check compares every target at the current size.
func (f *folder) check() {
	size := f.rng.End()
	for len(f.targets) > 0 && f.targets[0].size == size {
		t := f.targets[0]
		f.targets = f.targets[1:]
		root := treeState{size: size, hashes: f.rng.Hashes()}.root()
		src := 0
		if t.against {
			src = 1
		}
		g := &f.good[src]
		if bytes.Equal(root, t.root) {
			if !t.against {
				f.rep.Verified = max(f.rep.Verified, size)
			}
			g.size, g.hashes = size, append([][]byte(nil), f.rng.Hashes()...)
			continue
		}
		if !g.located {
			g.located = true
			f.locates = append(f.locates, locateReq{from: *g, target: t})
			continue
		}
		kind := KindMismatch
		if t.against {
			kind = KindRollback
		}
		f.rep.add(Problem{Kind: kind, Index: -1, Checkpoint: size, Detail: "recomputed root differs (follows from an earlier difference)"})
	}
}

// finish reports the targets beyond the end of the log.
func (f *folder) finish() {
	f.rep.Leaves = f.rng.End()
	f.rep.Root = treeState{size: f.rng.End(), hashes: f.rng.Hashes()}.root()
	for _, t := range f.targets {
		g := &f.good[0]
		if t.against {
			g = &f.good[1]
		}
		if !g.located { // name the first leaf that differs before the end
			g.located = true
			f.locates = append(f.locates, locateReq{from: *g, target: t, missing: true})
			continue
		}
		kind, what := KindMissing, "a stored checkpoint"
		if t.against {
			kind, what = KindRollback, "the saved checkpoint"
		}
		f.rep.add(Problem{Kind: kind, Index: int64(f.rep.Leaves), Checkpoint: t.size,
			Detail: fmt.Sprintf("log ends at %d leaves but %s signs %d: leaves from %d on are missing", f.rep.Leaves, what, t.size, f.rep.Leaves)})
	}
}
