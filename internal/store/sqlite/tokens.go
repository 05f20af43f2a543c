package sqlite

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/phivault/phivault/internal/store"
)

// Besides the idx rows (one per token, keyed by token), each current,
// non-deleted version's tokens are kept in one tokset row keyed by the
// version's seq: toks is the set, sorted, each token as one length byte
// and its bytes. Telling which of a set of tokens each of many resources
// carries (Carried, which the date-sorted search walk asks of every
// candidate) is then one primary-key probe per resource; and an update or
// a delete reads from it which idx rows are the resource's (replaceTokens),
// as idx is kept in token order only.

// FillTokset is the SQL that fills an empty tokset table from the idx
// rows, for a store whose idx was written without it (the schema 2
// migration; a restore, which writes idx directly). idx is read in its
// own order (CROSS JOIN keeps it outer) and each row's resource looked up
// by primary key. A version without idx rows gets no row: it carries no
// tokens.
const FillTokset = `INSERT INTO tokset (seq, toks)
	SELECT c.seq, unhex(group_concat(printf('%02X', length(i.token)) || hex(i.token), '' ORDER BY i.token))
	FROM idx i CROSS JOIN current c
	WHERE c.rtype = i.rtype AND c.rid = i.rid AND c.deleted = 0 GROUP BY c.seq`

// maxTokenLen is the longest token the store takes (one length byte).
const maxTokenLen = 255

// tokenSet returns tokens sorted and without repeats, and that set as a
// tokset value. The idx rows are written from the set too: in key order,
// and one row per token.
func tokenSet(tokens []store.Token) (set []store.Token, enc []byte, err error) {
	set = slices.Clone(tokens)
	slices.SortFunc(set, func(a, b store.Token) int { return bytes.Compare(a, b) })
	set = slices.CompactFunc(set, func(a, b store.Token) bool { return bytes.Equal(a, b) })
	n := 0
	for _, t := range set {
		if len(t) > maxTokenLen {
			return nil, nil, fmt.Errorf("sqlite: a token of %d bytes (at most %d)", len(t), maxTokenLen)
		}
		n += 1 + len(t)
	}
	enc = make([]byte, 0, n)
	for _, t := range set {
		enc = append(enc, byte(len(t)))
		enc = append(enc, t...)
	}
	return set, enc, nil
}

// errShortTokset reports a tokset value that does not parse.
var errShortTokset = errors.New("sqlite: a token set is cut short")

// tokenFilter tells which tokens of a set (Carried's among) a token is.
// A bit per value of a token's first two bytes rejects nearly every
// token outside the set before the map is asked: blind tokens are
// uniformly random, so the 200 or so year tokens a date walk asks about
// set about 0.3% of the 65,536 bits, while a resource carries some
// fifty tokens. (Readable tokens, as in the plaintext-index benchmark
// build, share prefixes; the answers are the same, only fewer are
// rejected early.)
type tokenFilter struct {
	first [1 << 16 / 64]uint64
	pos   map[string]int
}

func newTokenFilter(among []store.Token) *tokenFilter {
	f := &tokenFilter{pos: store.TokenPositions(among)}
	for _, t := range among {
		if len(t) >= 2 {
			k := uint16(t[0])<<8 | uint16(t[1])
			f.first[k>>6] |= 1 << (k & 63)
		}
	}
	return f
}

// filters remembers the filters built: a date walk asks about the same
// year tokens of its parameter every time.
var filters struct {
	sync.Mutex
	m map[string]filterFor // by the set's first token
}

// filterFor is a filter and the set it was built for.
type filterFor struct {
	among []store.Token
	f     *tokenFilter
}

// maxFilters bounds filters; past it they start over.
const maxFilters = 256

// filterOf returns the filter of among, built once for as long as it is
// remembered. The filter is read-only once built.
func filterOf(among []store.Token) *tokenFilter {
	key := string(among[0])
	filters.Lock()
	e, ok := filters.m[key]
	filters.Unlock()
	if ok && slices.EqualFunc(e.among, among, func(a, b store.Token) bool { return bytes.Equal(a, b) }) {
		return e.f
	}
	e = filterFor{among: make([]store.Token, len(among)), f: newTokenFilter(among)}
	for i, t := range among {
		e.among[i] = bytes.Clone(t) // the caller's tokens may change later
	}
	filters.Lock()
	if filters.m == nil || len(filters.m) >= maxFilters {
		filters.m = make(map[string]filterFor)
	}
	filters.m[key] = e
	filters.Unlock()
	return e.f
}

// find returns tok's position in the set.
func (f *tokenFilter) find(tok []byte) (int, bool) {
	if len(tok) >= 2 {
		k := uint16(tok[0])<<8 | uint16(tok[1])
		if f.first[k>>6]&(1<<(k&63)) == 0 {
			return 0, false
		}
	}
	p, ok := f.pos[string(tok)]
	return p, ok
}

// putTokset records the tokens of the version seq.
func (w *writer) putTokset(seq int64, toks []byte) error {
	_, err := w.db.exec(w.ctx, `INSERT OR REPLACE INTO tokset (seq, toks) VALUES (?, ?)`, seq, toks)
	return err
}

// Carried implements store.Reader: one probe of current and tokset per id,
// or none for a token set kept in memory (postings).
func (r *reader) Carried(typ string, ids []string, among []store.Token) (map[string][]int, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	out := make(map[string][]int, len(ids))
	if len(ids) == 0 || len(among) == 0 {
		return out, nil
	}
	filter := filterOf(among)
	missing, kept := ids, false
	if r.postings != nil {
		missing = nil
		for _, id := range ids {
			toks, ok := r.postings.tokset(typ, id, r.gen)
			if !ok {
				missing = append(missing, id)
				continue
			}
			kept = true
			if err := carry(out, id, toks, filter); err != nil {
				return nil, err
			}
		}
	}
	if err := r.carriedSQL(out, typ, missing, filter); err != nil {
		return nil, err
	}
	if kept {
		// Answered from memory: the check below ties the View's snapshot
		// to the sets' generation, and later reads see what these saw.
		if err := r.snapshot(); err != nil {
			return nil, err
		}
	}
	if kept && r.postings.generation() != r.gen {
		// A commit changed the index while this ran: the sets kept may
		// not be this snapshot's.
		clear(out)
		err := r.carriedSQL(out, typ, ids, filter) // keeps none: gen moved
		return out, err
	}
	return out, nil
}

// carriedSQL adds to out the positions of filter's tokens that each of ids
// carries, read from SQLite, and keeps the token sets read (postings).
func (r *reader) carriedSQL(out map[string][]int, typ string, ids []string, filter *tokenFilter) error {
	if len(ids) == 0 {
		return nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	// The ids drive (CROSS JOIN keeps them outer): primary-key probes only.
	rows, err := r.db.query(r.ctx, `SELECT j.value, t.toks FROM json_each(?) j CROSS JOIN current c CROSS JOIN tokset t
		WHERE c.rtype = ? AND c.rid = j.value AND c.deleted = 0 AND t.seq = c.seq`, string(list), typ)
	if err != nil {
		return fmt.Errorf("sqlite: carried: %w", err)
	}
	defer rows.Close()
	r.snapped = true
	var id string
	var toks sql.RawBytes // read in place: a token set is about a kilobyte
	for rows.Next() {
		if err := rows.Scan(&id, &toks); err != nil {
			return fmt.Errorf("sqlite: carried: %w", err)
		}
		if err := carry(out, id, toks, filter); err != nil {
			return err
		}
		if r.postings != nil {
			r.postings.keepTokset(typ, id, bytes.Clone(toks), r.gen)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: carried: %w", err)
	}
	return nil
}

// carry sets out[id] to the sorted positions of filter's tokens in the
// tokset value toks, if it carries any.
func carry(out map[string][]int, id string, toks []byte, filter *tokenFilter) error {
	var buf [8]int // most resources carry one or two: one allocation, of their size
	got := buf[:0]
	if err := eachToken(toks, func(tok []byte) {
		if p, ok := filter.find(tok); ok {
			got = append(got, p)
		}
	}); err != nil {
		return err
	}
	if len(got) > 0 {
		slices.Sort(got)
		out[id] = slices.Clone(got)
	}
	return nil
}

// readTokset returns the token set of the version seq.
func (w *writer) readTokset(seq int64) ([]store.Token, error) {
	return w.tokset(`SELECT toks FROM tokset WHERE seq = ?`, seq)
}

// takeTokset returns the token set of the version seq and deletes its row.
func (w *writer) takeTokset(seq int64) ([]store.Token, error) {
	return w.tokset(`DELETE FROM tokset WHERE seq = ? RETURNING toks`, seq)
}

// tokset runs query, which yields the tokset value of seq, and decodes
// it. A live version without a row carries no tokens: Put writes a row,
// empty or not, for every live version, and FillTokset none for a version
// without idx rows.
func (w *writer) tokset(query string, seq int64) ([]store.Token, error) {
	var toks []byte
	if err := w.db.queryRow(w.ctx, query, seq).Scan(&toks); errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return DecodeTokset(toks)
}

// DecodeTokset splits a tokset value into its tokens, which alias b.
func DecodeTokset(b []byte) ([]store.Token, error) {
	var out []store.Token
	if err := eachToken(b, func(tok []byte) { out = append(out, tok) }); err != nil {
		return nil, err
	}
	return out, nil
}

// eachToken calls fn with each token of the tokset value b, in order; the
// token aliases b. A value cut short is an error (after the whole tokens
// before the cut).
func eachToken(b []byte, fn func(tok []byte)) error {
	for len(b) > 0 {
		n := 1 + int(b[0])
		if n > len(b) {
			return errShortTokset
		}
		fn(b[1:n])
		b = b[n:]
	}
	return nil
}

// diffTokens returns the tokens only in a and those only in b, both sets
// sorted as tokenSet sorts them.
func diffTokens(a, b []store.Token) (onlyA, onlyB []store.Token) {
	for len(a) > 0 && len(b) > 0 {
		switch c := bytes.Compare(a[0], b[0]); {
		case c < 0:
			onlyA, a = append(onlyA, a[0]), a[1:]
		case c > 0:
			onlyB, b = append(onlyB, b[0]), b[1:]
		default:
			a, b = a[1:], b[1:]
		}
	}
	return append(onlyA, a...), append(onlyB, b...)
}
