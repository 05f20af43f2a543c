package sqlite

import (
	"fmt"
	"strings"
	"sync"

	"github.com/phivault/phivault/internal/store"
)

// postings keeps in memory, between the commits that change the index,
// the posting lists (the ids carrying a token group) of large groups that
// Match keeps probing. A query driven by a small group, a patient's
// resources, then checks each candidate against a set instead of seeking
// the large group's postings in the index once per candidate: every
// patient-scoped search names the same category, and each seek descends
// the token B-tree from its root.
//
// Admission. A group is read into memory once the queries since the last
// commit that changed the index have probed it for at least as many
// candidates as it has postings: the seeks already spent would have paid
// for reading it (reading a posting in order costs less than a seek).
// Groups that are never probed often are never read; a write load that
// commits many times a second keeps most groups from being read at all,
// and Match then costs what it did without the sets.
//
// Coherence, as the version cache's. gen counts the writer's commits that
// change idx rows (puts and reindexes) and is odd while one is committing.
// A View's reader notes gen before its snapshot is taken (at its first
// read); a set is kept only if gen has not moved since the reader that
// read it noted it, and used only by readers that noted that same even
// gen and find it unmoved after their query has read its rows. So a set
// used holds exactly the postings of the reader's snapshot. Writers never
// use the sets: their transaction sees its own uncommitted rows.
//
// It also keeps, under the same coherence, the postings of the groups that
// drove Match, in id order, as its scan read them whole: the next look at
// the same patient's chart then reads no idx row. And the token sets
// Carried has read (a current version's tokset value, by type and id):
// the date-sorted walk asks for the years of the same patients' resources
// at every look at their charts, and each answer from SQLite is two
// primary-key probes and a copy of about a kilobyte. A commit that
// changes no idx row changes no current version's token set: a version
// put with the tokens of the one it replaces has an equal set, and any
// other put or delete changes idx rows (replaceTokens).
//
// What it holds is what the index holds: blind tokens, their postings,
// ids.
type postings struct {
	mu     sync.Mutex
	gen    uint64
	sets   bytesMap[string, idSet]      // by sizeKey, counted as setBytes counts
	probed map[string]int64             // candidates probed per group in this gen
	toks   bytesMap[versionKey, []byte] // token sets, as tokBytes counts
	lists  bytesMap[string, []string]   // drivers' postings in id order, by sizeKey
}

// idSet is a group's postings.
type idSet map[string]struct{}

// postingsBytes bounds the memory the sets hold; a group whose set would
// take more than a quarter of it is never read into one.
const postingsBytes = 64 << 20

// postingMinSize and postingMaxSize bound the postings of a group kept:
// probing a small group costs little more than looking its ids up, and a
// set of postingMaxSize ids of 36 bytes takes about a quarter of
// postingsBytes.
const (
	postingMinSize = 256
	postingMaxSize = postingsBytes / 4 / 96
)

// newPostings keeps up to limit bytes of sets, half that of token sets and
// a quarter of drivers' postings.
func newPostings(limit int64) *postings {
	return &postings{sets: newBytesMap[string](limit, setBytes), probed: map[string]int64{},
		toks: newBytesMap[versionKey](limit/2, tokBytes), lists: newBytesMap[string](limit/4, listBytes)}
}

// listBytes is what a driver's postings kept are counted as.
func listBytes(ids []string) int64 {
	n := int64(64)
	for _, id := range ids {
		n += int64(len(id)) + 16
	}
	return n
}

// tokBytes is what a token set kept is counted as: its bytes, and a bound
// on its key (a type name and an id, which FHIR keeps to 64 characters)
// and on what the map takes beside them.
func tokBytes(toks []byte) int64 { return int64(len(toks)) + 192 }

// idBytes is what one id of a set is counted as: the string and about
// what the map takes beside it.
func idBytes(id string) int64 { return int64(len(id)) + 48 }

// generation returns the generation a reader starts in.
func (p *postings) generation() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

// probe records that a reader that started in gen probes the group key
// for n candidates, and returns how many candidates the group has been
// probed for in this generation (0: the generation has moved).
func (p *postings) probe(key string, gen uint64, n int64) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.current(gen) {
		return 0
	}
	p.probed[key] += n
	return p.probed[key]
}

// current reports whether a reader that started in gen may use and keep
// what is held: no commit that changes the index has started since. The
// caller holds p.mu.
func (p *postings) current(gen uint64) bool { return p.gen == gen && gen%2 == 0 }

// held returns the value m holds under k for a reader that started in gen.
// The caller must not write to it.
func held[K comparable, V any](p *postings, m *bytesMap[K, V], k K, gen uint64) (v V, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current(gen) {
		v, ok = m.m[k]
	}
	return v, ok
}

// hold keeps v, of n bytes, read by a reader that started in gen, under k
// in m, unless it takes more than most bytes or a commit that changes the
// index has started since. Beyond m's limit it drops values at random to
// make room.
func hold[K comparable, V any](p *postings, m *bytesMap[K, V], k K, v V, n, most int64, gen uint64) {
	if n > most {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current(gen) {
		m.put(k, v, n)
	}
}

// get returns the set of the group key for a reader that started in gen.
func (p *postings) get(key string, gen uint64) (idSet, bool) { return held(p, &p.sets, key, gen) }

// put keeps s, the group key's postings; a set of more than a quarter of
// the limit is not kept.
func (p *postings) put(key string, s idSet, gen uint64) {
	hold(p, &p.sets, key, s, setBytes(s), p.sets.limit/4, gen)
}

// list returns the postings of the driving group key, in id order.
func (p *postings) list(key string, gen uint64) ([]string, bool) { return held(p, &p.lists, key, gen) }

// keepList keeps ids, the postings of the driving group key in id order,
// read whole.
func (p *postings) keepList(key string, ids []string, gen uint64) {
	hold(p, &p.lists, key, ids, listBytes(ids), p.lists.limit/16, gen)
}

// tokset returns the token set (a tokset value) of typ/id.
func (p *postings) tokset(typ, id string, gen uint64) ([]byte, bool) {
	return held(p, &p.toks, versionKey{typ, id}, gen)
}

// keepTokset keeps toks, typ/id's token set.
func (p *postings) keepTokset(typ, id string, toks []byte, gen uint64) {
	hold(p, &p.toks, versionKey{typ, id}, toks, tokBytes(toks), p.toks.limit/16, gen)
}

func setBytes(s idSet) int64 {
	var n int64
	for id := range s {
		n += idBytes(id)
	}
	return n
}

// committing marks the start of a commit that changes idx rows: no reader
// uses or keeps a set until ended.
func (p *postings) committing() {
	p.mu.Lock()
	p.gen |= 1
	p.mu.Unlock()
}

// ended marks the end of that commit, whether it committed or not: every
// set, probe count, token set and driver's postings is dropped, and
// readers starting from now on read and use them again.
func (p *postings) ended() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sets.clear()
	clear(p.probed)
	p.toks.clear()
	p.lists.clear()
	p.gen = (p.gen | 1) + 1
}

// readSet reads group g's postings of type typ.
func (r *reader) readSet(typ string, g []store.Token) (idSet, error) {
	var b strings.Builder
	b.WriteString(`SELECT rid FROM idx WHERE rtype = ? AND token IN (`)
	args := appendTokens(&b, []any{typ}, g)
	b.WriteString(`)`)
	rows, err := r.db.query(r.ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: match postings: %w", err)
	}
	defer rows.Close()
	s := idSet{}
	var id string
	for rows.Next() {
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: match postings: %w", err)
		}
		s[id] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: match postings: %w", err)
	}
	return s, nil
}
