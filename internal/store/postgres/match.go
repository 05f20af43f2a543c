package postgres

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/phivault/phivault/internal/store"
)

// Match and Count run over the token index idx, which holds the tokens of
// current, non-deleted versions only. As in the embedded store, the group
// with the fewest postings drives a scan of idx_token and every other group
// is an EXISTS probe on the primary key. Each group is one bytea[]
// parameter, so a query's text depends only on the number of groups and
// its prepared statement is reused.

func tokenArray(g []store.Token) [][]byte {
	out := make([][]byte, len(g))
	for i, t := range g {
		out[i] = blob(t)
	}
	return out
}

// matchSQL builds the query for q's shape and its arguments; drive is the
// driving group. Match appends the LIMIT argument.
func matchSQL(q store.MatchQuery, drive int, count bool) (query string, args []any) {
	if len(q.All) == 0 {
		if count {
			return `SELECT count(*) FROM current WHERE rtype = $1 AND NOT deleted AND rid > $2`, []any{q.Type, q.After}
		}
		return `SELECT rid FROM current WHERE rtype = $1 AND NOT deleted AND rid > $2 ORDER BY rid LIMIT $3`, []any{q.Type, q.After}
	}
	// One token's postings are unique; several need DISTINCT.
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
	b.WriteString(` FROM idx i WHERE i.token = ANY($3) AND i.rtype = $1 AND i.rid > $2`)
	args = append(args, q.Type, q.After, tokenArray(q.All[drive]))
	for i, g := range q.All {
		if i == drive {
			continue
		}
		args = append(args, tokenArray(g))
		b.WriteString(` AND EXISTS (SELECT 1 FROM idx j WHERE j.rtype = i.rtype AND j.rid = i.rid AND j.token = ANY($` +
			strconv.Itoa(len(args)) + `))`)
	}
	if !count {
		b.WriteString(` ORDER BY i.rid LIMIT $` + strconv.Itoa(len(args)+1))
	}
	return b.String(), args
}

// estimateCap bounds the postings counted per group when choosing the
// driving group, so the estimate stays cheap for common tokens.
const estimateCap = 5000

// driver picks the group with the fewest postings (counted up to
// estimateCap), preferring fewer tokens on a tie. ok is false when some
// group is empty (an OR of nothing), so nothing can match.
func (r *reader) driver(q store.MatchQuery) (drive int, ok bool, err error) {
	for _, g := range q.All {
		if len(g) == 0 {
			return 0, false, nil
		}
	}
	if len(q.All) < 2 {
		return 0, true, nil
	}
	best := int64(-1)
	for i, g := range q.All {
		var n int64
		if err := r.scanRow(`SELECT count(*) FROM (SELECT 1 FROM idx WHERE token = ANY($3) AND rtype = $1 AND rid > $2 LIMIT $4) s`,
			[]any{q.Type, q.After, tokenArray(g), estimateCap}, &n); err != nil {
			return 0, false, fmt.Errorf("postgres: match estimate: %w", err)
		}
		if best < 0 || n < best || (n == best && len(g) < len(q.All[drive])) {
			best, drive = n, i
		}
	}
	return drive, true, nil
}

// Match implements store.Reader.
func (r *reader) Match(q store.MatchQuery) ([]string, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if q.Type == "" {
		return nil, errors.New("postgres: match needs a type")
	}
	drive, ok, err := r.driver(q)
	if err != nil || !ok {
		return nil, err
	}
	query, args := matchSQL(q, drive, false)
	var limit *int64 // NULL: no limit
	if q.Limit > 0 {
		l := int64(q.Limit)
		limit = &l
	}
	ids, err := collect(r, query, append(args, limit), pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: match: %w", err)
	}
	return ids, nil
}

// Count implements store.Reader: Match's result size, ignoring q.Limit.
func (r *reader) Count(q store.MatchQuery) (int, error) {
	if err := r.check(); err != nil {
		return 0, err
	}
	if q.Type == "" {
		return 0, errors.New("postgres: count needs a type")
	}
	drive, ok, err := r.driver(q)
	if err != nil || !ok {
		return 0, err
	}
	query, args := matchSQL(q, drive, true)
	var n int64
	if err := r.scanRow(query, args, &n); err != nil {
		return 0, fmt.Errorf("postgres: count: %w", err)
	}
	return int(n), nil
}

// Carried implements store.Reader: one primary-key probe per id.
func (r *reader) Carried(typ string, ids []string, among []store.Token) (map[string][]int, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	out := map[string][]int{}
	if len(ids) == 0 || len(among) == 0 {
		return out, nil
	}
	pos := store.TokenPositions(among)
	type pair struct {
		id  string
		tok []byte
	}
	rows, err := collect(r, `SELECT rid, token FROM idx WHERE rtype = $1 AND rid = ANY($2) AND token = ANY($3)`,
		[]any{typ, ids, tokenArray(among)}, func(row pgx.CollectableRow) (pair, error) {
			var p pair
			err := row.Scan(&p.id, &p.tok)
			return p, err
		})
	if err != nil {
		return nil, fmt.Errorf("postgres: carried: %w", err)
	}
	for _, p := range rows {
		if i, ok := pos[string(p.tok)]; ok {
			out[p.id] = append(out[p.id], i)
		}
	}
	for _, p := range out {
		slices.Sort(p)
	}
	return out, nil
}
