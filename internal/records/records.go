// Package records stores versioned FHIR resources over the barrier and a
// storage backend. It is the one way the rest of phivault reads or writes
// resources: bodies are sealed under the data key of their patient
// compartment (or the tenant key), bound to tenant, type, id and version;
// index entries are blind tokens; every version is kept.
//
// records knows resources only as JSON objects with "resourceType" and "id";
// validation, search semantics and policy live elsewhere.
package records

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store"
)

// Errors of the package; match with errors.Is.
var (
	ErrNotFound     = errors.New("records: not found")
	ErrDeleted      = errors.New("records: deleted")
	ErrPrecondition = errors.New("records: version precondition failed")
	// ErrConflict: a concurrent change won; the caller may re-plan and retry.
	ErrConflict = errors.New("records: concurrent change")
	// ErrIntegrity: stored data failed to authenticate or decode.
	ErrIntegrity = errors.New("records: stored data failed its integrity check")
)

// Indexer says how a resource is found: its blind index tokens and the
// patient whose compartment it belongs to ("" for none). It must be safe
// for concurrent use and deterministic for a given resource.
type Indexer interface {
	Index(res map[string]any) (tokens []store.Token, patient string, err error)
}

// Observer is implemented by an Indexer that must learn of committed
// changes (the search engine takes changed SearchParameters into use).
// Commit calls Committed once its changes are durable, before it returns,
// with its ops, which Committed must not modify.
type Observer interface {
	Committed(ctx context.Context, ops []Op)
}

// Entry is one version of a resource as the caller sees it.
type Entry struct {
	Type    string
	ID      string
	VID     int64
	Updated time.Time
	Deleted bool
	Seq     int64
	Patient string // id of the patient whose compartment holds it, "" if none
	Body    []byte // JSON with meta.versionId and meta.lastUpdated; nil if Deleted
}

// Store is the resource store. It is safe for concurrent use.
type Store struct {
	st     store.Backend
	b      *barrier.Barrier
	ix     Indexer
	tenant string
	now    func() time.Time
}

// New returns a Store for tenant over st, sealing through b and indexing
// with ix.
func New(st store.Backend, b *barrier.Barrier, ix Indexer, tenant string) *Store {
	return &Store{st: st, b: b, ix: ix, tenant: tenant, now: time.Now}
}

// Backend returns the storage backend, for components that append to it in
// the same transaction as a write (audit).
func (s *Store) Backend() store.Backend { return s.st }

func (s *Store) context(typ, id string, vid int64) []byte {
	return barrier.Context(s.tenant, typ, id, strconv.FormatInt(vid, 10))
}

// Read returns the current version. A deleted resource gives ErrDeleted
// with the delete marker's Entry.
func (s *Store) Read(ctx context.Context, typ, id string) (Entry, error) {
	vs, err := s.current(ctx, typ, []string{id})
	if err == nil && len(vs) == 0 {
		err = store.ErrNotFound
	}
	var v store.Version
	if err == nil {
		v = vs[0]
	}
	return s.entry(ctx, v, err)
}

// current returns the current versions of those of ids that exist, delete
// markers included, in the order of ids, from one snapshot: through the
// backend's faster path where it has one (store.CurrentReader).
func (s *Store) current(ctx context.Context, typ string, ids []string) ([]store.Version, error) {
	if cr, ok := s.st.(store.CurrentReader); ok {
		return cr.ReadCurrent(ctx, typ, ids)
	}
	var vs []store.Version
	err := s.st.View(ctx, func(r store.Reader) error {
		var err error
		vs, err = r.CurrentMany(typ, ids)
		return err
	})
	return vs, err
}

// VRead returns one version. A delete marker gives ErrDeleted.
func (s *Store) VRead(ctx context.Context, typ, id string, vid int64) (Entry, error) {
	var v store.Version
	err := s.st.View(ctx, func(r store.Reader) error {
		var err error
		v, err = r.Get(typ, id, vid)
		return err
	})
	return s.entry(ctx, v, err)
}

// ReadMany returns the current, not deleted versions of ids in their order,
// skipping ids that do not exist, are deleted or were erased.
func (s *Store) ReadMany(ctx context.Context, typ string, ids []string) ([]Entry, error) {
	cur, err := s.current(ctx, typ, ids)
	if err != nil {
		return nil, err
	}
	vs := make([]store.Version, 0, len(cur))
	for _, v := range cur {
		if !v.Deleted {
			vs = append(vs, v)
		}
	}
	out := make([]Entry, 0, len(vs))
	for _, v := range vs {
		e, err := s.open(ctx, v)
		if errors.Is(err, barrier.ErrKeyDestroyed) {
			continue // erased (crypto-shredded): gone, like a deleted resource
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// History returns versions newest first; delete markers have no Body.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) ([]Entry, error) {
	var vs []store.Version
	err := s.st.View(ctx, func(r store.Reader) error {
		var err error
		vs, err = r.History(q)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(vs))
	for _, v := range vs {
		e, err := s.open(ctx, v)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Match returns ids of current resources matching q (see store.Reader.Match).
func (s *Store) Match(ctx context.Context, q store.MatchQuery) (ids []string, err error) {
	q.Alone = true // the View below reads nothing else
	err = s.st.View(ctx, func(r store.Reader) error {
		ids, err = r.Match(q)
		return err
	})
	return ids, err
}

// Count returns how many current resources match q.
func (s *Store) Count(ctx context.Context, q store.MatchQuery) (n int, err error) {
	err = s.st.View(ctx, func(r store.Reader) error {
		n, err = r.Count(q)
		return err
	})
	return n, err
}

// Token returns the blind token of parts (see barrier.Barrier.Token).
func (s *Store) Token(parts ...string) store.Token { return s.b.Token(parts...) }

func (s *Store) entry(ctx context.Context, v store.Version, err error) (Entry, error) {
	if errors.Is(err, store.ErrNotFound) {
		return Entry{}, ErrNotFound
	}
	if err != nil {
		return Entry{}, err
	}
	e, err := s.open(ctx, v)
	if err != nil {
		return e, err
	}
	if e.Deleted {
		return e, ErrDeleted
	}
	return e, nil
}

func (s *Store) open(ctx context.Context, v store.Version) (Entry, error) {
	e := Entry{Type: v.Type, ID: v.ID, VID: v.VID, Updated: v.Updated, Deleted: v.Deleted, Seq: v.Seq}
	if v.Deleted {
		return e, nil
	}
	body, err := s.b.Open(ctx, s.context(v.Type, v.ID, v.VID), v.Body)
	if err != nil {
		if errors.Is(err, barrier.ErrKeyDestroyed) {
			return e, fmt.Errorf("%s/%s: %w", v.Type, v.ID, err)
		}
		return e, fmt.Errorf("%w: %s/%s/_history/%d: %v", ErrIntegrity, v.Type, v.ID, v.VID, err)
	}
	e.Patient, e.Body, err = unwrapBody(body)
	if err != nil {
		return e, fmt.Errorf("%w: %s/%s/_history/%d: %v", ErrIntegrity, v.Type, v.ID, v.VID, err)
	}
	return e, nil
}

// The sealed plaintext is the patient id (uvarint length, bytes) followed by
// the resource JSON, so reads learn the compartment without parsing.
func wrapBody(patient string, body []byte) []byte {
	out := make([]byte, 0, binary.MaxVarintLen64+len(patient)+len(body))
	out = binary.AppendUvarint(out, uint64(len(patient)))
	out = append(out, patient...)
	return append(out, body...)
}

func unwrapBody(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, errors.New("bad body envelope")
	}
	return string(b[k : k+int(n)]), b[k+int(n):], nil
}
