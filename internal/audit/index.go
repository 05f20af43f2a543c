package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// The leaf index, in the store's metadata next to the tree (see
// docs/audit.md, "Reading the log"). The Integrator writes it in the same
// transaction as the tiles and the tree state, so the index covers exactly
// the leaves [0, audit/ix/size) and can neither lag nor diverge from the
// integrated tree; leaves newer than that are found by scanning the tail.
//
//	audit/ix/size              leaves indexed (8 bytes big-endian); equals the
//	                           tree size except while an index is being built
//	                           for a log integrated before the index existed
//	audit/ix/{p,a}/H           posting list head of the patient (p) or agent
//	                           (a, the user id) whose term hash is H: the
//	                           number of postings n (uvarint), then the
//	                           postings after the last full chunk (n mod
//	                           ixChunk of them, encoded as a chunk): one key
//	                           to read and write per list and batch
//	audit/ix/{p,a}/H/CCCCCCCC  full chunk C (hex) of that list: postings
//	                           [C*ixChunk, (C+1)*ixChunk), leaf indexes in
//	                           ascending order, each a uvarint of its
//	                           difference from the previous one (the first
//	                           from 0); written once
//	audit/ix/t/YYYY-MM/DDHH    the leaves recorded in that UTC hour: the
//	                           lowest leaf index and the highest plus one
//	                           (two uvarints)
//	audit/ix/tspan             the first and the last hour that has a bucket
//	                           (two uvarints, hours since the Unix epoch)
//
// H is the first 16 bytes of SHA-256 over the kind and the value, in hex:
// it keeps keys short and of one shape whatever the id. It hides nothing:
// the leaves hold the same ids in the clear.
const (
	keyIndexSize   = "audit/ix/size"
	keyIxTimeSpan  = "audit/ix/tspan"
	prefixIndex    = "audit/ix/"
	prefixIxTime   = "audit/ix/t/"
	ixChunk        = 1024
	termPatient    = 'p'
	termAgent      = 'a'
	ixHourLayout   = "2006-01/0215"
	ixMonthLayout  = "2006-01/"
	maxIndexedTerm = 256 // longer ids (never valid FHIR or user ids) are not indexed
)

// leafTerms is what the index records of one leaf.
type leafTerms struct {
	time     time.Time // zero if the leaf has no valid recorded time
	patients []string
	agent    string
}

// termsOf reads the indexed terms of a leaf: the patients it names as
// patient entities (type 1, role 1), the user agent's id, the recorded
// time. A leaf that is not a JSON object yields no terms (it is still in
// the tree; verify reports it).
func termsOf(leaf []byte) leafTerms {
	t, _ := termsScan(leaf)
	return t
}

// parseRecorded reads an AuditEvent's recorded time; zero if invalid.
func parseRecorded(s string) time.Time {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return tm.UTC()
}

// termKey is the head key of the posting list of value.
func termKey(kind byte, value string) string {
	h := sha256.Sum256(append([]byte{kind, 0}, value...))
	return prefixIndex + string(kind) + "/" + hex.EncodeToString(h[:16])
}

func chunkKey(head string, c uint64) string { return fmt.Sprintf("%s/%08x", head, c) }

func hourKey(t time.Time) string { return prefixIxTime + bucketTime(t).Format(ixHourLayout) }

// bucketTime is the time whose hour bucket holds t: t itself (UTC), or
// for times before 1970-01-01T01:00Z (a broken clock) that first hour,
// which then holds every earlier time.
func bucketTime(t time.Time) time.Time {
	if t.Unix() < 3600 {
		return time.Unix(3600, 0).UTC()
	}
	return t.UTC()
}

// readIndexSize returns the number of leaves indexed.
func readIndexSize(r store.Reader) (uint64, error) {
	b, err := r.Meta(keyIndexSize)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("audit: read index size: %w", err)
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("audit: corrupt index size (%d bytes)", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// readHead returns the posting count of the list at head and the
// postings of its tail (those after the last full chunk).
func readHead(r metaReader, head string) (uint64, []uint64, error) {
	b, err := r.Meta(head)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("audit: index: %w", err)
	}
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return 0, nil, fmt.Errorf("audit: index: corrupt posting head %s", head)
	}
	tail, err := decodeChunk(nil, b[k:])
	if err != nil {
		return 0, nil, err
	}
	if uint64(len(tail)) != n%ixChunk {
		return 0, nil, fmt.Errorf("audit: index: posting head %s holds %d postings, its count says %d", head, len(tail), n%ixChunk)
	}
	return n, tail, nil
}

// decodeChunk appends the postings of chunk b to out.
func decodeChunk(out []uint64, b []byte) ([]uint64, error) {
	var prev uint64
	first := true
	for len(b) > 0 {
		d, k := binary.Uvarint(b)
		if k <= 0 {
			return out, errors.New("audit: index: corrupt posting chunk")
		}
		b = b[k:]
		if !first && d == 0 {
			return out, errors.New("audit: index: posting chunk not ascending")
		}
		prev += d
		first = false
		out = append(out, prev)
	}
	return out, nil
}

// ixUpdate collects the index writes of one integration step.
type ixUpdate struct {
	r      metaReader
	writes map[string][]byte
	lists  map[string]*ixList
	hours  map[string][2]uint64
	span   [2]uint64 // hours since the epoch of the first and last bucket written; span[1] == 0: none
}

// ixList is a posting list being extended: the postings of its last,
// partial chunk (read from the store) and those appended.
type ixList struct {
	count uint64   // postings before this step
	tail  []uint64 // postings of the last chunk, old and new
	added uint64
}

// metaReader is the part of store.Reader the index update reads.
type metaReader interface {
	Meta(key string) ([]byte, error)
}

func newIxUpdate(r metaReader) *ixUpdate {
	return &ixUpdate{r: r, writes: map[string][]byte{}, lists: map[string]*ixList{}, hours: map[string][2]uint64{}}
}

// add indexes leaf i.
func (u *ixUpdate) add(i uint64, leaf []byte) error {
	t := termsOf(leaf)
	for _, p := range t.patients {
		if err := u.post(termKey(termPatient, p), i); err != nil {
			return err
		}
	}
	if t.agent != "" {
		if err := u.post(termKey(termAgent, t.agent), i); err != nil {
			return err
		}
	}
	if !t.time.IsZero() {
		k := hourKey(t.time)
		b, ok := u.hours[k]
		if !ok {
			b = [2]uint64{i, i + 1}
			old, err := u.r.Meta(k)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return fmt.Errorf("audit: index: %w", err)
			default:
				lo, n1 := binary.Uvarint(old)
				hi, n2 := binary.Uvarint(old[max(n1, 0):])
				if n1 <= 0 || n2 <= 0 || n1+n2 != len(old) || lo >= hi {
					return fmt.Errorf("audit: index: corrupt time bucket %s", k)
				}
				b = [2]uint64{lo, hi}
			}
		}
		b[0], b[1] = min(b[0], i), max(b[1], i+1)
		u.hours[k] = b
		h := epochHour(t.time)
		if u.span[1] == 0 {
			u.span = [2]uint64{h, h}
		}
		u.span = [2]uint64{min(u.span[0], h), max(u.span[1], h)}
	}
	return nil
}

// post appends leaf i to the list at head.
func (u *ixUpdate) post(head string, i uint64) error {
	l, ok := u.lists[head]
	if !ok {
		n, tail, err := readHead(u.r, head)
		if err != nil {
			return err
		}
		l = &ixList{count: n, tail: tail}
		u.lists[head] = l
	}
	if len(l.tail) > 0 && l.tail[len(l.tail)-1] >= i {
		return fmt.Errorf("audit: index: leaf %d posted after %d", i, l.tail[len(l.tail)-1])
	}
	l.tail = append(l.tail, i)
	l.added++
	if len(l.tail) == ixChunk {
		u.writes[chunkKey(head, (l.count+l.added-1)/ixChunk)] = encodeChunk(l.tail)
		l.tail = l.tail[:0]
	}
	return nil
}

func encodeChunk(ps []uint64) []byte {
	b := make([]byte, 0, len(ps)*3)
	var prev uint64
	for _, p := range ps {
		b = binary.AppendUvarint(b, p-prev)
		prev = p
	}
	return b
}

// epochHour is the hour of t's bucket since the Unix epoch.
func epochHour(t time.Time) uint64 { return uint64(bucketTime(t).Unix() / 3600) }

// readTimeSpan returns the first and last hour with a bucket; ok is false
// if there is none.
func readTimeSpan(r metaReader) (span [2]uint64, ok bool, err error) {
	b, err := r.Meta(keyIxTimeSpan)
	if errors.Is(err, store.ErrNotFound) {
		return span, false, nil
	}
	if err != nil {
		return span, false, fmt.Errorf("audit: index: %w", err)
	}
	lo, n1 := binary.Uvarint(b)
	hi, n2 := binary.Uvarint(b[max(n1, 0):])
	if n1 <= 0 || n2 <= 0 || n1+n2 != len(b) || lo > hi {
		return span, false, errors.New("audit: index: corrupt time span")
	}
	return [2]uint64{lo, hi}, true, nil
}

// finish returns every key to write, the index size included.
func (u *ixUpdate) finish(size uint64) (map[string][]byte, error) {
	if u.span[1] != 0 {
		old, ok, err := readTimeSpan(u.r)
		if err != nil {
			return nil, err
		}
		if ok {
			u.span = [2]uint64{min(u.span[0], old[0]), max(u.span[1], old[1])}
		}
		u.writes[keyIxTimeSpan] = binary.AppendUvarint(binary.AppendUvarint(nil, u.span[0]), u.span[1])
	}
	for head, l := range u.lists {
		n := l.count + l.added
		u.writes[head] = append(binary.AppendUvarint(nil, n), encodeChunk(l.tail)...)
	}
	for k, b := range u.hours {
		u.writes[k] = binary.AppendUvarint(binary.AppendUvarint(nil, b[0]), b[1])
	}
	u.writes[keyIndexSize] = binary.BigEndian.AppendUint64(nil, size)
	return u.writes, nil
}

// indexBatch returns the index writes that add leaves (with indexes from
// first on) to the index read through r, which covers [0, first).
func indexBatch(r metaReader, first uint64, leaves [][]byte) (map[string][]byte, error) {
	u := newIxUpdate(r)
	for k, l := range leaves {
		if err := u.add(first+uint64(k), l); err != nil {
			return nil, err
		}
	}
	return u.finish(first + uint64(len(leaves)))
}

// indexLeaves is indexBatch for the stored leaves [from, to).
func indexLeaves(r store.Reader, from, to uint64) (map[string][]byte, error) {
	leaves, err := r.AuditLeaves(int64(from), int64(to))
	if err != nil {
		return nil, fmt.Errorf("audit: index leaves [%d, %d): %w", from, to, err)
	}
	if uint64(len(leaves)) != to-from {
		return nil, fmt.Errorf("audit: index: store returned %d leaves for [%d, %d)", len(leaves), from, to)
	}
	return indexBatch(r, from, leaves)
}
