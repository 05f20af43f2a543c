package records

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// Op is one change in a Commit.
type Op struct {
	Type, ID string
	// Resource is the new content (nil deletes). Its "id" must equal ID;
	// Commit sets meta.versionId and meta.lastUpdated.
	Resource map[string]any
	// IfMatch, when not zero, is the version the change expects to replace.
	IfMatch int64
	// MustCreate fails the op with ErrConflict if the resource exists (and
	// is not deleted).
	MustCreate bool
	// Patient names, for a delete, the patient compartment the caller read
	// the resource from (a delete marker has no body to learn it from); it
	// is reported in the Result for the access decision and the audit.
	Patient string
	// Unless, when set, makes the commit fail with ErrConflict if any
	// resource matches it inside the transaction (a conditional create
	// decided earlier by a search that a concurrent write has since made
	// false).
	Unless *store.MatchQuery
}

// Result is the outcome of one Op.
type Result struct {
	Entry
	Created bool // a new resource (not an update of an existing one)
	NoOp    bool // delete of a resource that was absent or already deleted
}

type prepared struct {
	op     Op
	v      store.Version
	tokens []store.Token
	res    Result
}

// Commit applies ops atomically: all of them and the audit leaf that
// leaf(results) returns become durable in one transaction, or none does.
// leaf may be nil only for changes that carry no audit (none in the
// server). Errors: ErrPrecondition for an IfMatch mismatch, ErrConflict when
// a concurrent change won (re-plan and retry), or the backend's error.
func (s *Store) Commit(ctx context.Context, ops []Op, leaf func([]Result) ([]byte, error)) ([]Result, error) {
	cur := make([]store.Version, len(ops))
	found := make([]bool, len(ops))
	err := s.st.View(ctx, func(r store.Reader) error {
		for i, op := range ops {
			v, err := r.Current(op.Type, op.ID)
			if err == nil {
				cur[i], found[i] = v, true
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	ps := make([]prepared, len(ops))
	next := map[[2]string]store.Version{} // same resource twice in one commit
	for i, op := range ops {
		p, err := s.prepare(ctx, op, cur[i], found[i], next, now)
		if err != nil {
			return nil, err
		}
		ps[i] = p
	}
	results := make([]Result, len(ps))
	for i := range ps {
		results[i] = ps[i].res
	}
	var auditLeaf []byte
	if leaf != nil {
		if auditLeaf, err = leaf(results); err != nil {
			return nil, err
		}
	}
	err = s.st.Update(ctx, func(tx store.Writer) error {
		for i := range ps {
			p := &ps[i]
			if q := p.op.Unless; q != nil {
				ids, err := tx.Match(store.MatchQuery{Type: q.Type, All: q.All, Limit: 1})
				if err != nil {
					return err
				}
				if len(ids) > 0 {
					return ErrConflict
				}
			}
			if p.res.NoOp {
				continue
			}
			v, err := tx.Put(p.v, p.tokens)
			if errors.Is(err, store.ErrConflict) {
				return ErrConflict
			}
			if err != nil {
				return err
			}
			results[i].Seq = v.Seq
		}
		if auditLeaf != nil {
			_, err := tx.AppendAudit(auditLeaf)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if o, ok := s.ix.(Observer); ok {
		o.Committed(ctx, ops)
	}
	return results, nil
}

func (s *Store) prepare(ctx context.Context, op Op, cur store.Version, found bool, next map[[2]string]store.Version, now time.Time) (prepared, error) {
	k := [2]string{op.Type, op.ID}
	last := int64(0)
	if found {
		last = cur.VID
	}
	if n, ok := next[k]; ok {
		cur, found, last = n, true, n.VID
	}
	live := found && !cur.Deleted
	if op.IfMatch != 0 && (!found || op.IfMatch != last) {
		return prepared{}, ErrPrecondition
	}
	if op.MustCreate && live {
		return prepared{}, ErrConflict
	}
	p := prepared{op: op, v: store.Version{Type: op.Type, ID: op.ID, VID: last + 1, Updated: now}}
	p.res.Entry = Entry{Type: op.Type, ID: op.ID, VID: last + 1, Updated: now}
	if op.Resource == nil {
		if !live {
			p.res.NoOp, p.res.VID = true, last
			return p, nil
		}
		p.v.Deleted, p.res.Deleted, p.res.Patient = true, true, op.Patient
		next[k] = p.v
		return p, nil
	}
	p.res.Created = !live
	if id, _ := op.Resource["id"].(string); id != op.ID {
		return prepared{}, fmt.Errorf("records: resource id %q does not match %q", id, op.ID)
	}
	setMeta(op.Resource, last+1, now)
	body, err := marshal(op.Resource)
	if err != nil {
		return prepared{}, err
	}
	tokens, patient, err := s.ix.Index(op.Resource)
	if err != nil {
		return prepared{}, err
	}
	keyName := "tenant/" + s.tenant
	if patient != "" {
		keyName = "patient/" + patient
	}
	sealed, err := s.b.Seal(ctx, keyName, s.context(op.Type, op.ID, last+1), wrapBody(patient, body))
	if err != nil {
		return prepared{}, err
	}
	p.v.Body, p.tokens, p.res.Body, p.res.Patient = sealed, tokens, body, patient
	next[k] = p.v
	return p, nil
}

// setMeta records the version id and time in the resource's meta.
func setMeta(res map[string]any, vid int64, t time.Time) {
	m, _ := res["meta"].(map[string]any)
	if m == nil {
		m = map[string]any{}
		res["meta"] = m
	}
	m["versionId"] = strconv.FormatInt(vid, 10)
	m["lastUpdated"] = t.Format(time.RFC3339Nano)
}

// marshal encodes a resource as compact JSON without HTML escaping.
func marshal(res map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
