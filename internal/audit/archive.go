package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// Archive segments (docs/audit.md, "Retention and archiving"). A segment
// is a self-contained copy of the leaves [From, To) of the log with what
// proves them against a signed checkpoint of size TreeSize >= To: the
// compact ranges of [0, From) and [To, TreeSize). Merging left range, the
// leaf hashes and right range gives the signed root. The file is:
//
//	line 1                    the ArchiveHeader as JSON
//	next To-From lines        the leaf hashes, base64 (standard, padded)
//	next To-From lines        the leaves, base64, byte for byte as stored
//
// Each line ends in "\n". Archiving copies: the live log keeps every leaf.
const ArchiveFormat = "phivault-audit-segment/1"

// prefixArchive holds one ArchiveRecord per archived segment, keyed by
// its first leaf (20 digits), in the store's metadata.
const prefixArchive = "audit/archive/"

// DefaultRetention is the minimum time an audit leaf stays in the live
// log: six years (45 CFR 164.316(b)(2)(i)), counted from its recorded time.
const DefaultRetention = 6 * 365 * 24 * time.Hour

// ErrNothingToArchive means the segment asked for holds no leaf: every
// leaf before the cut is archived already.
var ErrNothingToArchive = errors.New("audit: nothing to archive")

// ArchiveHeader is the first line of a segment.
type ArchiveHeader struct {
	Format     string    `json:"format"`
	Origin     string    `json:"origin"`
	From       uint64    `json:"from"`
	To         uint64    `json:"to"`
	TreeSize   uint64    `json:"treeSize"`
	Left       [][]byte  `json:"left"`       // compact range of [0, From), base64
	Right      [][]byte  `json:"right"`      // compact range of [To, TreeSize), base64
	Checkpoint string    `json:"checkpoint"` // the signed note of TreeSize
	Created    time.Time `json:"created"`
	// Oldest and Newest are the earliest and latest recorded times of the
	// segment's leaves (zero for leaves without a valid time).
	Oldest time.Time `json:"oldest"`
	Newest time.Time `json:"newest"`
	// Before is the cut asked for, if any: no leaf of the segment was
	// recorded at or after it.
	Before *time.Time `json:"before,omitempty"`
	// KeepUntil is Newest plus the retention period: the live log must
	// keep these leaves at least until then.
	KeepUntil time.Time `json:"keepUntil"`
}

// SegmentOptions say which leaves a segment holds: from From up to the
// first of UpTo (if not 0), the first leaf recorded at or after Before
// (if not zero), and the checkpoint's size.
type SegmentOptions struct {
	From      uint64
	UpTo      uint64
	Before    time.Time
	Retention time.Duration // default DefaultRetention
	Now       time.Time     // default time.Now()
}

// Segment is a planned archive segment whose leaves were read and shown
// to reproduce the signed checkpoint. Write it with WriteTo.
type Segment struct {
	Header ArchiveHeader
	hashes [][]byte
}

// errStop ends a leaf scan at the cut.
var errStop = errors.New("stop")

// PlanSegment reads the leaves of the segment opt asks for, with the
// compact ranges around them, and checks that together they give the root
// of checkpoint (which v must have signed). It fails with
// ErrNothingToArchive when the segment would be empty, and wraps
// ErrTampered when the live log does not match its signed checkpoint.
func PlanSegment(ctx context.Context, p *Prover, checkpoint []byte, v note.Verifier, opt SegmentOptions) (*Segment, error) {
	c, err := OpenCheckpoint(checkpoint, v)
	if err != nil {
		return nil, err
	}
	if opt.Retention <= 0 {
		opt.Retention = DefaultRetention
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	limit := c.Size
	if opt.UpTo != 0 {
		if opt.UpTo > c.Size {
			return nil, fmt.Errorf("%w: leaf %d is beyond the signed checkpoint (%d leaves)", ErrTooLarge, opt.UpTo, c.Size)
		}
		limit = opt.UpTo
	}
	if opt.From >= limit {
		return nil, fmt.Errorf("%w: leaves [0, %d) are archived already and the segment would end at %d", ErrNothingToArchive, opt.From, limit)
	}
	s := &Segment{Header: ArchiveHeader{Format: ArchiveFormat, Origin: c.Origin, From: opt.From, TreeSize: c.Size,
		Checkpoint: string(checkpoint), Created: opt.Now.UTC().Truncate(time.Second)}}
	if !opt.Before.IsZero() {
		b := opt.Before.UTC()
		s.Header.Before = &b
	}
	err = p.ScanLeaves(ctx, opt.From, limit, 0, func(_ uint64, leaf []byte) error {
		t := termsOf(leaf).time
		if !opt.Before.IsZero() && !t.IsZero() && !t.Before(opt.Before) {
			return errStop
		}
		if !t.IsZero() {
			if s.Header.Oldest.IsZero() || t.Before(s.Header.Oldest) {
				s.Header.Oldest = t
			}
			if t.After(s.Header.Newest) {
				s.Header.Newest = t
			}
		}
		s.hashes = append(s.hashes, LeafHash(leaf))
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	s.Header.To = opt.From + uint64(len(s.hashes))
	if len(s.hashes) == 0 {
		return nil, fmt.Errorf("%w: leaf %d, the first not yet archived, was recorded at or after %s", ErrNothingToArchive, opt.From, opt.Before.UTC().Format(time.RFC3339))
	}
	if !s.Header.Newest.IsZero() {
		s.Header.KeepUntil = s.Header.Newest.Add(opt.Retention)
	}
	err = p.view(ctx, c.Size, func(nr nodeReader) (err error) {
		if s.Header.Left, err = nr.nodes(compact.RangeNodes(0, s.Header.From, nil)); err != nil {
			return err
		}
		s.Header.Right, err = nr.nodes(compact.RangeNodes(s.Header.To, c.Size, nil))
		return err
	})
	if err != nil {
		return nil, err
	}
	root, err := segmentRoot(s.Header, s.hashes)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(root, c.Root) {
		return nil, fmt.Errorf("%w: the leaves [%d, %d) and the stored tree do not give the signed root of checkpoint %d (run phivault audit verify)", ErrTampered, s.Header.From, s.Header.To, c.Size)
	}
	return s, nil
}

// segmentRoot merges the left range, the leaf hashes and the right range
// of h into the root of the tree of size h.TreeSize.
func segmentRoot(h ArchiveHeader, hashes [][]byte) ([]byte, error) {
	if h.From > h.To || h.To > h.TreeSize || uint64(len(hashes)) != h.To-h.From {
		return nil, fmt.Errorf("audit: segment [%d, %d) of %d with %d hashes", h.From, h.To, h.TreeSize, len(hashes))
	}
	left, err := rangeFactory.NewRange(0, h.From, append([][]byte(nil), h.Left...))
	if err != nil {
		return nil, fmt.Errorf("audit: left range: %v", err)
	}
	for _, lh := range hashes {
		if err := left.Append(lh, nil); err != nil {
			return nil, err
		}
	}
	right, err := rangeFactory.NewRange(h.To, h.TreeSize, append([][]byte(nil), h.Right...))
	if err != nil {
		return nil, fmt.Errorf("audit: right range: %v", err)
	}
	if err := left.AppendRange(right, nil); err != nil {
		return nil, err
	}
	if h.TreeSize == 0 {
		return hasher.EmptyRoot(), nil
	}
	return left.GetRootHash(nil)
}

// WriteTo writes the segment to w, reading its leaves from p again; it
// fails if a leaf differs from the one planned. The bytes are the same on
// every call, so the SHA-256 of one write is the SHA-256 of the next.
func (s *Segment) WriteTo(ctx context.Context, p *Prover, w io.Writer) (sum [sha256.Size]byte, n int64, err error) {
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	hb, err := json.Marshal(s.Header)
	if err != nil {
		return sum, 0, err
	}
	line := make([]byte, 0, 4096)
	line = append(append(line, hb...), '\n')
	if _, err := cw.Write(line); err != nil {
		return sum, cw.n, err
	}
	for _, lh := range s.hashes {
		line = base64.StdEncoding.AppendEncode(line[:0], lh)
		if _, err := cw.Write(append(line, '\n')); err != nil {
			return sum, cw.n, err
		}
	}
	err = p.ScanLeaves(ctx, s.Header.From, s.Header.To, 0, func(i uint64, leaf []byte) error {
		if !bytes.Equal(LeafHash(leaf), s.hashes[i-s.Header.From]) {
			return fmt.Errorf("%w: leaf %d changed while it was archived", ErrTampered, i)
		}
		line = base64.StdEncoding.AppendEncode(line[:0], leaf)
		_, err := cw.Write(append(line, '\n'))
		return err
	})
	if err != nil {
		return sum, cw.n, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
