package audit

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// KindFormat is a Problem of a segment file that does not follow the
// format (ArchiveFormat): a bad header, line or count.
const KindFormat = "format"

// maxSegmentLine bounds one line of a segment (the header, a leaf): a
// search that returns thousands of resources makes a leaf of hundreds of
// KB, far below this.
const maxSegmentLine = 64 << 20

// maxLeafProblems bounds the leaf findings kept: the first is what counts.
const maxLeafProblems = 1000

// ArchiveReport is the outcome of VerifyArchive.
type ArchiveReport struct {
	Header     ArchiveHeader
	Checkpoint Checkpoint // as signed; zero if the signature failed
	Leaves     uint64     // leaf lines read
	// RootOK: the listed leaf hashes, between the left and right ranges,
	// give the signed root.
	RootOK bool
	// Problems, ordered by the first leaf they concern (header and
	// signature problems first): Problems[0] is the first bad entry.
	Problems []Problem
}

// OK reports whether the segment verified.
func (r *ArchiveReport) OK() bool { return len(r.Problems) == 0 }

// Err returns nil if the segment verified, or an error wrapping ErrTampered
// that names the first problem.
func (r *ArchiveReport) Err() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("%w: %s (%d problems)", ErrTampered, r.Problems[0], len(r.Problems))
}

func (r *ArchiveReport) add(p Problem) { r.Problems = append(r.Problems, p) }

// VerifyArchive checks a segment offline with the log's public key alone:
// the checkpoint's signature by v; that the left range, the listed leaf
// hashes and the right range give the signed root; that every leaf hashes
// to its listed hash (so each leaf is the one the signed root commits to,
// at its index); and that every leaf is an AuditEvent. It names the first
// bad leaf: a leaf changed, dropped, added or moved differs from the hash
// listed at its index. If the listed hashes or ranges were changed too,
// the root fails and the leaf that differs from its listed hash, if any,
// is named as the likely one.
//
// The error is for failures to read rd; findings are in the report.
func VerifyArchive(rd io.Reader, v note.Verifier) (*ArchiveReport, error) {
	rep := &ArchiveReport{}
	br := bufio.NewReaderSize(rd, 1<<16)
	line, err := readSegmentLine(br)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, errPartialLine) {
			rep.add(Problem{Kind: KindFormat, Index: -1, Detail: "no segment header (empty or truncated file)"})
			return rep, nil
		}
		return nil, err
	}
	h := &rep.Header
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(h); err != nil || h.Format != ArchiveFormat {
		rep.add(Problem{Kind: KindFormat, Index: -1, Detail: fmt.Sprintf("not a %s header (format %q, %v)", ArchiveFormat, h.Format, err)})
		return rep, nil
	}
	if !headerShape(rep) {
		return rep, nil
	}
	c, err := OpenCheckpoint([]byte(h.Checkpoint), v)
	switch {
	case err != nil:
		rep.add(Problem{Kind: KindSignature, Index: -1, Detail: fmt.Sprintf("the segment's checkpoint: %v", err)})
	case c.Size != h.TreeSize:
		rep.add(Problem{Kind: KindFormat, Index: -1, Checkpoint: c.Size, Detail: fmt.Sprintf("the header says tree size %d, the checkpoint signs %d", h.TreeSize, c.Size)})
	default:
		rep.Checkpoint = c
	}

	count := h.To - h.From
	hashes := make([][]byte, 0, min(count, 1<<20))
	for i := h.From; i < h.To; i++ {
		line, err := readSegmentLine(br)
		if errors.Is(err, io.EOF) || errors.Is(err, errPartialLine) {
			rep.add(Problem{Kind: KindMissing, Index: int64(i), Detail: fmt.Sprintf("the file ends in the leaf hashes: %d of %d listed", i-h.From, count)})
			return finishArchive(rep), nil
		}
		if err != nil {
			return nil, err
		}
		lh, err := base64.StdEncoding.Strict().DecodeString(string(line))
		if err != nil || len(lh) != hashSize {
			rep.add(Problem{Kind: KindFormat, Index: int64(i), Detail: "the listed leaf hash is not 32 bytes of base64"})
			return finishArchive(rep), nil
		}
		hashes = append(hashes, lh)
	}
	if rep.Checkpoint.Root != nil {
		root, err := segmentRoot(*h, hashes)
		rep.RootOK = err == nil && bytes.Equal(root, rep.Checkpoint.Root)
		if !rep.RootOK {
			rep.add(Problem{Kind: KindMismatch, Index: -1, Checkpoint: c.Size,
				Detail: "the left range, the listed leaf hashes and the right range do not give the signed root: the header, the hash list or the checkpoint was changed"})
		}
	}

	leafProblems := 0
	var oldest, newest time.Time // of the leaves, as they say
	for i := h.From; i < h.To; i++ {
		line, err := readSegmentLine(br)
		if errors.Is(err, io.EOF) || errors.Is(err, errPartialLine) {
			rep.add(Problem{Kind: KindMissing, Index: int64(i), Detail: fmt.Sprintf("leaf missing: the file holds %d whole leaves of %d", i-h.From, count)})
			return finishArchive(rep), nil
		}
		if err != nil {
			return nil, err
		}
		rep.Leaves++
		if leafProblems >= maxLeafProblems {
			continue
		}
		leaf, err := base64.StdEncoding.Strict().DecodeString(string(line))
		if err != nil {
			rep.add(Problem{Kind: KindFormat, Index: int64(i), Detail: "the leaf line is not base64"})
			leafProblems++
			continue
		}
		if lh := LeafHash(leaf); !bytes.Equal(lh, hashes[i-h.From]) {
			what := "the hash listed for its index, which the signed root commits to"
			if !rep.RootOK {
				what = "the hash listed for its index (the list does not verify either)"
			}
			rep.add(Problem{Kind: KindMismatch, Index: int64(i), Detail: fmt.Sprintf("leaf differs from %s (hash %x, listed %x): changed, dropped, added or moved", what, lh[:8], hashes[i-h.From][:8])})
			leafProblems++
			continue
		}
		if err := checkLeaf(leaf); err != nil {
			rep.add(Problem{Kind: KindLeaf, Index: int64(i), Detail: err.Error()})
			leafProblems++
			continue
		}
		t := termsOf(leaf).time
		if h.Before != nil && !t.Before(*h.Before) {
			rep.add(Problem{Kind: KindFormat, Index: int64(i), Detail: fmt.Sprintf("leaf recorded %s, not before the segment's cut %s", t.Format(time.RFC3339Nano), h.Before.Format(time.RFC3339Nano))})
			leafProblems++
		}
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
		if t.After(newest) {
			newest = t
		}
	}
	if leafProblems == 0 {
		checkTimes(rep, oldest, newest)
	}
	if _, err := readSegmentLine(br); !errors.Is(err, io.EOF) {
		if err != nil && !errors.Is(err, errPartialLine) {
			return nil, err
		}
		rep.add(Problem{Kind: KindFormat, Index: int64(h.To), Detail: fmt.Sprintf("data after the %d leaves the header announces", count)})
	}
	return finishArchive(rep), nil
}

// checkTimes checks the header's claims about the leaves' times: the
// oldest and newest recorded times, and a keepUntil at least six years
// after the newest.
func checkTimes(rep *ArchiveReport, oldest, newest time.Time) {
	h := rep.Header
	if !h.Oldest.Equal(oldest) || !h.Newest.Equal(newest) {
		rep.add(Problem{Kind: KindFormat, Index: -1, Detail: fmt.Sprintf("the header says the leaves were recorded %s to %s; they say %s to %s",
			h.Oldest.Format(time.RFC3339Nano), h.Newest.Format(time.RFC3339Nano), oldest.Format(time.RFC3339Nano), newest.Format(time.RFC3339Nano))})
	}
	if !newest.IsZero() && h.KeepUntil.Before(newest.Add(DefaultRetention)) {
		rep.add(Problem{Kind: KindFormat, Index: -1, Detail: fmt.Sprintf("keepUntil %s is less than six years after the newest leaf (%s)", h.KeepUntil.Format(time.RFC3339), newest.Format(time.RFC3339))})
	}
}

// headerShape checks the header's numbers and ranges against each other.
func headerShape(rep *ArchiveReport) bool {
	h := rep.Header
	bad := func(format string, a ...any) bool {
		rep.add(Problem{Kind: KindFormat, Index: -1, Detail: fmt.Sprintf(format, a...)})
		return false
	}
	if h.From >= h.To || h.To > h.TreeSize {
		return bad("the header's leaves [%d, %d) are not a segment of a tree of %d", h.From, h.To, h.TreeSize)
	}
	if n := compact.RangeSize(0, h.From); len(h.Left) != n {
		return bad("the left range has %d hashes, [0, %d) needs %d", len(h.Left), h.From, n)
	}
	if n := compact.RangeSize(h.To, h.TreeSize); len(h.Right) != n {
		return bad("the right range has %d hashes, [%d, %d) needs %d", len(h.Right), h.To, h.TreeSize, n)
	}
	for _, hs := range append(append([][]byte(nil), h.Left...), h.Right...) {
		if len(hs) != hashSize {
			return bad("a range hash has %d bytes, not %d", len(hs), hashSize)
		}
	}
	return true
}

// finishArchive orders the problems: header and signature first, then by
// leaf index.
func finishArchive(rep *ArchiveReport) *ArchiveReport {
	sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].Index < rep.Problems[j].Index })
	return rep
}

// errPartialLine: the input ends inside a line (a truncated file).
var errPartialLine = errors.New("the file ends inside a line")

// readSegmentLine returns the next line without its "\n"; io.EOF at the
// end of the input; errPartialLine if the last line has no "\n".
func readSegmentLine(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		b, err := br.ReadSlice('\n')
		out = append(out, b...)
		switch {
		case err == nil:
			return out[:len(out)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(out) > maxSegmentLine {
				return nil, fmt.Errorf("audit: segment line longer than %d bytes", maxSegmentLine)
			}
		case errors.Is(err, io.EOF) && len(out) > 0:
			return nil, errPartialLine
		default:
			return nil, err
		}
	}
}
