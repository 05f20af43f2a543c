package audit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// LeafQuery selects audit leaves. The zero value selects every leaf.
type LeafQuery struct {
	Patient string    // leaves naming this patient as a patient entity; "" any
	Agent   string    // leaves whose user agent (urn:phivault:user) is this id; "" any
	From    time.Time // recorded at or after From; zero: unbounded
	To      time.Time // recorded before To; zero: unbounded
	Start   uint64    // leaves with index >= Start
	Limit   int       // at most Limit matches; 0: no limit
}

// LeafMatch is one leaf found, with its index in the log.
type LeafMatch struct {
	Index uint64
	Leaf  []byte
}

// LeafResult is the answer to a LeafQuery.
type LeafResult struct {
	Matches []LeafMatch // in log order
	// More is true when Limit stopped the search before another match;
	// Next is that match's index, the Start of the next page.
	More bool
	Next uint64
	// Size is the log size the query saw: leaves [0, Size) were
	// considered. Indexed of them were found through the index, the rest
	// by scanning the tail.
	Size, Indexed uint64
}

// leafReadBatch bounds the candidates read per store snapshot.
const leafReadBatch = 4096

// FindLeaves returns the leaves that match q and that keep (if not nil)
// accepts, in log order. Its cost is proportional to the candidates the
// index yields (the postings of q.Patient or q.Agent, else the leaves of
// the hours q's dates cover) plus the tail of the log not integrated yet,
// not to the size of the log. Every candidate is checked against q from
// its own bytes, so a match always truly names the patient, agent and
// time asked for. The result is a consistent view of the log of size
// Size, except that leaves are read in several snapshots (the log only
// grows, so none changes).
func (p *Prover) FindLeaves(ctx context.Context, q LeafQuery, keep func(index uint64, leaf []byte) bool) (LeafResult, error) {
	var (
		res  LeafResult
		cand []uint64 // indexed candidates, ascending; nil with dense
		lo   uint64   // dense range of indexed candidates [lo, hi)
		hi   uint64
	)
	dense := q.Patient == "" && q.Agent == ""
	err := p.st.View(ctx, func(r store.Reader) error {
		n, err := r.AuditSize()
		if err != nil {
			return fmt.Errorf("audit: find leaves: %w", err)
		}
		if res.Indexed, err = readIndexSize(r); err != nil {
			return err
		}
		res.Size = uint64(max(n, 0))
		res.Indexed = min(res.Indexed, res.Size)
		if lo, hi, err = timeRange(r, q.From, q.To, res.Indexed); err != nil {
			return err
		}
		lo = max(lo, q.Start)
		if dense || lo >= hi {
			return nil
		}
		var lists [][]uint64
		for _, t := range []struct {
			kind byte
			v    string
		}{{termPatient, q.Patient}, {termAgent, q.Agent}} {
			if t.v == "" {
				continue
			}
			ps, err := postings(r, termKey(t.kind, t.v))
			if err != nil {
				return err
			}
			lists = append(lists, ps)
		}
		cand = intersect(lists)
		a, _ := slices.BinarySearch(cand, lo)
		b, _ := slices.BinarySearch(cand, hi)
		cand = cand[a:b]
		return nil
	})
	if err != nil {
		return res, err
	}
	f := finder{p: p, q: q, keep: keep, res: &res}
	if dense {
		if lo < hi {
			if err := f.scan(ctx, lo, hi); err != nil || f.done {
				return res, err
			}
		}
	} else if err := f.read(ctx, cand); err != nil || f.done {
		return res, err
	}
	return res, f.scan(ctx, max(res.Indexed, q.Start), res.Size)
}

// finder checks candidates and collects matches.
type finder struct {
	p    *Prover
	q    LeafQuery
	keep func(uint64, []byte) bool
	res  *LeafResult
	done bool
}

// consider checks leaf i; it sets done once a match beyond Limit is found.
func (f *finder) consider(i uint64, leaf []byte) {
	if !f.matches(leaf) || (f.keep != nil && !f.keep(i, leaf)) {
		return
	}
	if f.q.Limit > 0 && len(f.res.Matches) == f.q.Limit {
		f.res.More, f.res.Next, f.done = true, i, true
		return
	}
	f.res.Matches = append(f.res.Matches, LeafMatch{Index: i, Leaf: leaf})
}

func (f *finder) matches(leaf []byte) bool {
	t := termsOf(leaf)
	switch {
	case f.q.Patient != "" && !slices.Contains(t.patients, f.q.Patient):
		return false
	case f.q.Agent != "" && t.agent != f.q.Agent:
		return false
	case (!f.q.From.IsZero() || !f.q.To.IsZero()) && t.time.IsZero():
		return false
	case !f.q.From.IsZero() && t.time.Before(f.q.From):
		return false
	case !f.q.To.IsZero() && !t.time.Before(f.q.To):
		return false
	}
	return true
}

// scan considers every leaf in [from, to).
func (f *finder) scan(ctx context.Context, from, to uint64) error {
	if from >= to {
		return nil
	}
	errStop := errors.New("stop")
	batch := leafReadBatch
	if f.q.Limit > 0 {
		batch = min(batch, 2*f.q.Limit+16) // a small page reads little
	}
	err := f.p.ScanLeaves(ctx, from, to, batch, func(i uint64, leaf []byte) error {
		if f.consider(i, leaf); f.done {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// read considers the leaves at the indexes cand (ascending), reading a
// batch of them per snapshot.
func (f *finder) read(ctx context.Context, cand []uint64) error {
	for len(cand) > 0 && !f.done {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := cand[:min(len(cand), leafReadBatch)]
		cand = cand[len(batch):]
		leaves := make([][]byte, len(batch))
		err := f.p.st.View(ctx, func(r store.Reader) error {
			for k := 0; k < len(batch); {
				// A run of consecutive indexes is one read.
				e := k + 1
				for e < len(batch) && batch[e] == batch[e-1]+1 {
					e++
				}
				ls, err := r.AuditLeaves(int64(batch[k]), int64(batch[e-1])+1)
				if err != nil {
					return fmt.Errorf("audit: find leaves: leaf %d: %w", batch[k], err)
				}
				if len(ls) != e-k {
					return fmt.Errorf("audit: find leaves: store returned %d leaves for [%d, %d]", len(ls), batch[k], batch[e-1])
				}
				copy(leaves[k:e], ls)
				k = e
			}
			return nil
		})
		if err != nil {
			return err
		}
		for k, l := range leaves {
			if f.consider(batch[k], l); f.done {
				break
			}
		}
	}
	return nil
}

// postings returns the posting list at head.
func postings(r store.Reader, head string) ([]uint64, error) {
	n, tail, err := readHead(r, head)
	if err != nil || n == 0 {
		return nil, err
	}
	out := make([]uint64, 0, n)
	for c := uint64(0); c < n/ixChunk; c++ {
		b, err := r.Meta(chunkKey(head, c))
		if err != nil {
			return nil, fmt.Errorf("audit: index: chunk %d of %s: %w", c, head, err)
		}
		first := len(out)
		if out, err = decodeChunk(out, b); err != nil {
			return nil, err
		}
		if first > 0 && len(out) > first && out[first] <= out[first-1] {
			return nil, fmt.Errorf("audit: index: chunks of %s not ascending", head)
		}
	}
	if len(out) > 0 && len(tail) > 0 && tail[0] <= out[len(out)-1] {
		return nil, fmt.Errorf("audit: index: chunks of %s not ascending", head)
	}
	out = append(out, tail...)
	if uint64(len(out)) != n {
		return nil, fmt.Errorf("audit: index: %s holds %d postings, head says %d", head, len(out), n)
	}
	return out, nil
}

// intersect returns the postings common to all lists (ascending).
func intersect(lists [][]uint64) []uint64 {
	if len(lists) == 0 {
		return nil
	}
	out := lists[0]
	for _, l := range lists[1:] {
		var both []uint64
		for i, j := 0, 0; i < len(out) && j < len(l); {
			switch {
			case out[i] < l[j]:
				i++
			case out[i] > l[j]:
				j++
			default:
				both = append(both, out[i])
				i++
				j++
			}
		}
		out = both
	}
	return out
}

// timeRange returns a range of leaf indexes [lo, hi) within [0, indexed)
// that holds every indexed leaf recorded in [from, to) (zero: unbounded),
// from the hour buckets those times overlap.
func timeRange(r store.Reader, from, to time.Time, indexed uint64) (lo, hi uint64, err error) {
	if from.IsZero() && to.IsZero() {
		return 0, indexed, nil
	}
	span, ok, err := readTimeSpan(r)
	if err != nil || !ok {
		return 0, 0, err
	}
	first := time.Unix(int64(span[0])*3600, 0).UTC()
	last := time.Unix(int64(span[1])*3600, 0).UTC()
	if f := bucketTime(from).Truncate(time.Hour); !from.IsZero() && f.After(first) {
		first = f
	}
	if t := bucketTime(to); !to.IsZero() && t.Before(last) {
		last = t
	}
	lo, hi = indexed, 0
	for m := time.Date(first.Year(), first.Month(), 1, 0, 0, 0, 0, time.UTC); !m.After(last); m = m.AddDate(0, 1, 0) {
		kvs, err := r.MetaPrefix(prefixIxTime + m.Format(ixMonthLayout))
		if err != nil {
			return 0, 0, fmt.Errorf("audit: index: %w", err)
		}
		for _, kv := range kvs {
			h, err := time.Parse(ixHourLayout, kv.Key[len(prefixIxTime):])
			if err != nil {
				return 0, 0, fmt.Errorf("audit: index: corrupt time bucket %s", kv.Key)
			}
			// The epoch's second hour also holds every earlier time.
			early := h.Unix() == 3600
			if (!to.IsZero() && !h.Before(to) && !early) || (!from.IsZero() && !h.Add(time.Hour).After(from)) {
				continue
			}
			l, n1 := binary.Uvarint(kv.Value)
			u, n2 := binary.Uvarint(kv.Value[max(n1, 0):])
			if n1 <= 0 || n2 <= 0 {
				return 0, 0, fmt.Errorf("audit: index: corrupt time bucket %s", kv.Key)
			}
			lo, hi = min(lo, l), max(hi, u)
		}
	}
	if lo >= hi {
		return 0, 0, nil
	}
	return lo, min(hi, indexed), nil
}
