package search

import (
	"context"
	"encoding/base64"
	"encoding/json"

	"github.com/phivault/phivault/internal/b64url"
	"github.com/phivault/phivault/internal/barrier"
)

// cursor is the position a next or previous link continues from: the sort
// keys and id of the last (first, for Prev) resource of the page that made
// it. It travels sealed under a data key of its own and bound to the query,
// so a link reveals nothing of the data and cannot be moved to another
// query, and bound to the caller (user and session), so a link replayed by
// another caller fails to open and gets a 400 and nothing else. Keyset paging keeps links correct while data changes: a page
// holds the resources ordered after the cursor at the time it is read.
type cursor struct {
	Prev bool   `json:"p,omitempty"`
	Key  []sval `json:"k,omitempty"`
	ID   string `json:"i"`
}

const cursorKey = "search/cursor"

func cursorContext(pl *plan) []byte {
	parts := append([]string{"search-cursor", pl.typ, pl.canon.Encode()}, pl.caller...)
	return barrier.Context(parts...)
}

func (e *Engine) sealCursor(ctx context.Context, pl *plan, c cursor) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	s, err := e.b.Seal(ctx, cursorKey, cursorContext(pl), b)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s), nil
}

func (e *Engine) openCursor(ctx context.Context, pl *plan) (*cursor, error) {
	if pl.cursor == "" {
		return nil, nil
	}
	bad := badRequest("the paging link is not valid for this query; start the search again")
	raw, err := b64url.Decode(pl.cursor) // one spelling per link
	if err != nil || len(raw) > 8192 {
		return nil, bad
	}
	b, err := e.b.Open(ctx, cursorContext(pl), raw)
	if err != nil {
		return nil, bad
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil || len(c.Key) != len(pl.sort) {
		return nil, bad
	}
	return &c, nil
}
