package sqlite

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/phivault/phivault/internal/store"
)

// Match and Count run over the token index idx, which holds the tokens of
// current, non-deleted versions only, keyed by (token, rtype, rid). One
// group drives a scan of its tokens' postings; each other group is an
// EXISTS probe or a set of ids (plan).

// matchSQL builds the query for q's shape and its arguments. The plan's
// driving group drives the scan over the token index (which holds only
// current, non-deleted versions); every other group is an EXISTS probe or
// a set of ids.
func matchSQL(q store.MatchQuery, p plan, count bool) (query string, args []any) {
	drive := p.drive
	if len(q.All) == 0 {
		if count {
			return `SELECT count(*) FROM current WHERE rtype = ? AND deleted = 0 AND rid > ?`, []any{q.Type, q.After}
		}
		return `SELECT rid FROM current WHERE rtype = ? AND deleted = 0 AND rid > ? ORDER BY rid LIMIT ?`, []any{q.Type, q.After}
	}
	// One token's postings are unique and in id order; several need DISTINCT.
	distinct := ""
	if len(q.All[drive]) > 1 {
		distinct = "DISTINCT "
	}
	var b strings.Builder
	if count {
		b.WriteString(`SELECT count(` + distinct + `i.rid)`)
	} else {
		b.WriteString(`SELECT ` + distinct + `i.rid`)
	}
	b.WriteString(` FROM idx i WHERE i.rtype = ? AND i.rid > ? AND i.token IN (`)
	args = append(args, q.Type, q.After)
	args = appendTokens(&b, args, q.All[drive])
	b.WriteString(`)`)
	for i, g := range q.All {
		if i == drive || p.mem[i] != nil {
			continue // the driver, or a group checked against its set in memory
		}
		// A group is probed with a seek per token for each candidate: the
		// driver yields ids in order, so the probes walk each token's
		// postings forward and read each of their pages once. A large
		// group (a date range is an OR of many buckets) whose postings the
		// plan says are few next to the driver's (the two bounds of a date
		// range) is read once into a set of ids instead, in which each
		// candidate is looked up (the + keeps SQLite from seeking each of
		// them per driver token).
		if p.sets[i] {
			b.WriteString(` AND +i.rid IN (SELECT j.rid FROM idx j WHERE j.rtype = ? AND j.token IN (`)
			args = appendTokens(&b, append(args, q.Type), g)
			b.WriteString(`))`)
		} else {
			b.WriteString(` AND EXISTS (SELECT 1 FROM idx j WHERE j.token IN (`)
			args = appendTokens(&b, args, g)
			b.WriteString(`) AND j.rtype = i.rtype AND j.rid = i.rid)`)
		}
	}
	if !count {
		b.WriteString(` ORDER BY i.rid LIMIT ?`)
	}
	return b.String(), args
}

// probeSeeks is the largest group that is always probed per candidate
// (one seek per token); a larger one may be read into a set.
const probeSeeks = 8

// estimateCap bounds the postings counted per group when choosing the
// driving group, so the estimate stays cheap for common tokens.
const estimateCap = 5000

// estimateSteps are the limits the driver counts the groups up to, in
// turn: it stops at the first limit some group stays under, so choosing
// costs about the smallest group's postings times the number of groups,
// not the largest group's.
var estimateSteps = [...]int64{64, 512, estimateCap}

// setFactor: a group of more than probeSeeks tokens is read into a set
// when its postings are at most setFactor times the driver's. Probing it
// costs a seek per token per candidate (some thirty for a date bound);
// the set costs one read per posting.
const setFactor = 16

// plan is how Match answers a query: which group drives, which other
// groups are read into a set of ids by the query, and which are checked
// against a set of ids in memory (postings); the rest are probed per
// candidate. counts are the groups' postings counted up to limit (n ==
// limit: at least n).
type plan struct {
	drive  int
	sets   []bool
	mem    []idSet
	counts []int64
	limit  int64
	keys   []string // the groups' sizeKeys when driver made them ("" otherwise)
	list   []string // the driver's postings in memory, in id order (postings), or nil
}

// driver plans q: it picks the group with the fewest postings (counted up
// to estimateCap), preferring fewer tokens on a tie: a single-token driver
// yields ids in order, so a page stops early. Sets are read only when the
// whole driver is scanned (counting, no limit, or a driver of several
// tokens, whose ids are sorted before the first is returned): a page that
// stops early probes few candidates. ok is false when some group is empty
// (an OR of nothing), so nothing can match.
func (r *reader) driver(q store.MatchQuery, count bool) (p plan, ok bool, err error) {
	p.sets = make([]bool, len(q.All))
	p.mem = make([]idSet, len(q.All))
	for _, g := range q.All {
		if len(g) == 0 {
			return p, false, nil
		}
	}
	if len(q.All) < 2 {
		return p, true, nil
	}
	counts := make([]int64, len(q.All))
	keys := make([]string, len(q.All)) // the sizes' keys, made once per query
	if r.sizes != nil && q.After == "" {
		for i, g := range q.All {
			keys[i] = sizeKey(q.Type, g)
		}
	}
	var limit int64
	for _, limit = range estimateSteps {
		best := int64(-1)
		for i, g := range q.All {
			n, err := r.groupSize(q, g, keys[i], limit)
			if err != nil {
				return p, false, err
			}
			counts[i] = n
			if best < 0 || n < best || (n == best && len(g) < len(q.All[p.drive])) {
				best, p.drive = n, i
			}
		}
		if best < limit {
			break // every other group has at least limit postings
		}
	}
	p.counts, p.limit, p.keys = counts, limit, keys
	if !count && q.Limit > 0 && len(q.All[p.drive]) == 1 {
		return p, true, nil
	}
	for i, g := range q.All {
		// counts[i] < limit: the count is exact, not a floor.
		p.sets[i] = i != p.drive && len(g) > probeSeeks && counts[i] < limit && counts[i] <= setFactor*max(counts[p.drive], 1)
	}
	return p, true, nil
}

// groupSize counts group g's postings after q.After, up to limit. A
// group with a key (sizeKey; first pages only) is looked up in and
// recorded to the backend's sizes.
func (r *reader) groupSize(q store.MatchQuery, g []store.Token, key string, limit int64) (int64, error) {
	if key != "" {
		if n, ok := r.sizes.get(key, limit); ok {
			return n, nil
		}
	}
	var b strings.Builder
	b.WriteString(`SELECT count(*) FROM (SELECT 1 FROM idx WHERE rtype = ? AND rid > ? AND token IN (`)
	args := appendTokens(&b, []any{q.Type, q.After}, g)
	// The limit (one of three) is written into the text: bound, it made
	// SQLite prepare the statement again at every run (2.4% of the
	// server's CPU under the patient-scoped search).
	fmt.Fprintf(&b, `) LIMIT %d)`, limit)
	var n int64
	if err := r.db.queryRow(r.ctx, b.String(), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: match estimate: %w", err)
	}
	if key != "" {
		r.sizes.put(key, n, limit)
	}
	return n, nil
}

func appendTokens(b *strings.Builder, args []any, g []store.Token) []any {
	for k, t := range g {
		if k > 0 {
			b.WriteString(",")
		}
		b.WriteString("?")
		args = append(args, blob(t))
	}
	return args
}

// Match implements store.Reader.
func (r *reader) Match(q store.MatchQuery) ([]string, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if q.Type == "" {
		return nil, errors.New("sqlite: match needs a type")
	}
	p, ok, err := r.driver(q, false)
	if err != nil || !ok {
		return nil, err
	}
	cached, err := r.memorySets(q, &p)
	if err != nil {
		return nil, err
	}
	ids, err := r.matchIDs(q, p)
	if err == nil && cached && r.postings.generation() != r.gen {
		// A commit changed the index while the query ran: its snapshot
		// may not be the sets' (postings).
		clear(p.mem)
		p.list = nil
		ids, err = r.matchIDs(q, p)
	}
	return ids, err
}

// matchIDs runs the plan p of q, checking the candidates of the groups p
// holds in memory against their sets.
func (r *reader) matchIDs(q store.MatchQuery, p plan) ([]string, error) {
	// The driver alone is scanned when every other group is in memory; a
	// first page's scan then reads its postings whole, to be kept.
	alone := len(q.All) > 1
	for i, s := range p.mem {
		alone = alone && (i == p.drive || s != nil)
	}
	if alone && p.list != nil {
		return r.matchList(q, p)
	}
	query, args := matchSQL(q, p, false)
	limit, filter := int64(-1), false
	for _, s := range p.mem {
		filter = filter || s != nil
	}
	if q.Limit > 0 && !filter {
		limit = int64(q.Limit)
	}
	rows, err := r.db.query(r.ctx, query, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: match: %w", err)
	}
	defer rows.Close()
	r.snapped = true // the query started the View's read transaction
	var ids, all []string
	keep := alone && r.postings != nil && q.After == "" && limit < 0
	var id string
next:
	for rows.Next() {
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: match: %w", err)
		}
		if keep {
			all = append(all, id)
		}
		for _, s := range p.mem {
			if _, ok := s[id]; s != nil && !ok {
				continue next
			}
		}
		ids = append(ids, id)
		if q.Limit > 0 && len(ids) == q.Limit {
			keep = false // the rest of the postings are not read
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: match: %w", err)
	}
	if keep {
		r.postings.keepList(p.driverKey(q), all, r.gen)
	}
	return ids, nil
}

// driverKey is the sizeKey of p's driving group.
func (p plan) driverKey(q store.MatchQuery) string {
	if k := p.keys[p.drive]; k != "" {
		return k
	}
	return sizeKey(q.Type, q.All[p.drive])
}

// matchList answers q from the driver's postings in memory, p.list, and
// the sets in memory of every other group. Nothing is read from SQLite,
// so the View's snapshot is taken here if no read took it before, unless
// the View reads nothing else (q.Alone): Match then checks that the sets'
// generation is still the one the View started in.
func (r *reader) matchList(q store.MatchQuery, p plan) ([]string, error) {
	if !q.Alone {
		if err := r.snapshot(); err != nil {
			return nil, err
		}
	}
	from, _ := slices.BinarySearch(p.list, q.After)
	var ids []string
next:
	for _, id := range p.list[from:] {
		if id <= q.After {
			continue
		}
		for _, s := range p.mem {
			if _, ok := s[id]; s != nil && !ok {
				continue next
			}
		}
		ids = append(ids, id)
		if q.Limit > 0 && len(ids) == q.Limit {
			break
		}
	}
	return ids, nil
}

// memorySets fills p.mem with the sets in memory of the groups that are
// probed per candidate, reading into a set each group that has been
// probed enough (postings). It reports whether it took any set from the
// shared cache (a set read here is of this reader's snapshot).
func (r *reader) memorySets(q store.MatchQuery, p *plan) (cached bool, err error) {
	if r.postings == nil || len(q.All) < 2 {
		return false, nil
	}
	if l, ok := r.postings.list(p.driverKey(q), r.gen); ok {
		p.list, cached = l, true
	}
	n := max(p.counts[p.drive], 1) // candidates each group is probed for
	for i, g := range q.All {
		if i == p.drive || p.sets[i] {
			continue
		}
		key := p.keys[i]
		if key == "" { // a paging query: driver counted without the sizes
			key = sizeKey(q.Type, g)
		}
		if s, ok := r.postings.get(key, r.gen); ok {
			p.mem[i], cached = s, true
			continue
		}
		probed := r.postings.probe(key, r.gen, n)
		if probed < postingMinSize {
			continue
		}
		// Past a floor (or a count of the postings after a cursor only),
		// count on up to the power of two the probes have reached: the
		// count is kept a moment in sizes, and counting costs at most
		// twice what the probes have spent.
		size, upTo := p.counts[i], min(probed, postingMaxSize)
		if size >= p.limit || q.After != "" {
			step := min(int64(1)<<bits.Len64(uint64(probed)), postingMaxSize+1)
			if size, err = r.groupSize(store.MatchQuery{Type: q.Type}, g, key, step); err != nil {
				return false, err
			}
		}
		if size < postingMinSize || size > upTo {
			continue
		}
		s, err := r.readSet(q.Type, g)
		if err != nil {
			return false, err
		}
		r.postings.put(key, s, r.gen)
		p.mem[i] = s
	}
	return cached, nil
}

// Count implements store.Reader: Match's result size, ignoring q.Limit.
func (r *reader) Count(q store.MatchQuery) (int, error) {
	if err := r.check(); err != nil {
		return 0, err
	}
	if q.Type == "" {
		return 0, errors.New("sqlite: count needs a type")
	}
	p, ok, err := r.driver(q, true)
	if err != nil || !ok {
		return 0, err
	}
	query, args := matchSQL(q, p, true)
	var n int
	if err := r.db.queryRow(r.ctx, query, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count: %w", err)
	}
	return n, nil
}
