// Package store defines the storage backend interface of phivault.
//
// A backend is untrusted: it holds only what the barrier hands it - sealed
// resource bodies, blind index tokens, opaque ids, version numbers, system
// timestamps, wrapped keys and audit leaves. It never sees plaintext patient
// data and knows nothing of FHIR. Every backend implements this interface
// natively and passes the conformance suite in package storetest.
//
// Concurrency: a Backend is safe for concurrent use. Update calls may be
// grouped into one durable commit (group commit); each call still succeeds
// or fails on its own.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors that are part of the contract. Backends wrap them; callers match
// with errors.Is.
var (
	// ErrNotFound: no such resource, version or key.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: Put's expected previous version is not the current one.
	ErrConflict = errors.New("store: version conflict")
	// ErrExists: CreateMeta found the key already present.
	ErrExists = errors.New("store: already exists")
	// ErrClosed: the backend was closed.
	ErrClosed = errors.New("store: closed")
	// ErrUnavailable: the backend's server could not be reached (a
	// database restarting or cut off); nothing was read or written, and the
	// call may succeed later. A write whose commit outcome is unknown is
	// never reported with it.
	ErrUnavailable = errors.New("store: unavailable")
)

// Token is a blind index token: a keyed hash computed by the barrier. The
// backend compares tokens for equality and nothing else.
type Token []byte

// Version is one stored version of a resource.
type Version struct {
	Type    string    // resource type, e.g. "Observation"
	ID      string    // logical id
	VID     int64     // version id, 1 for the first version
	Updated time.Time // when this version was written (UTC, microsecond precision)
	Deleted bool      // a delete marker; Body is empty
	Seq     int64     // position in the store-wide change sequence, set by Put
	Body    []byte    // sealed body (opaque to the store)
}

// Backend is a storage engine.
type Backend interface {
	// View runs fn against a consistent read-only snapshot. fn must not keep
	// the Reader after it returns.
	View(ctx context.Context, fn func(Reader) error) error
	// Update runs fn in a read-write transaction and returns nil only once
	// everything fn wrote is durable (it survives a crash or power loss). If
	// fn returns an error, nothing it wrote is kept and Update returns that
	// error. fn may run on another goroutine and must not block on other
	// Update calls. fn may be called more than once (a backend may re-run a
	// group commit after one of its fns failed): only the effects of its
	// last call are kept, so fn must have no effects outside the Writer
	// other than recording what it wrote. ctx bounds the wait for the commit; once fn has run the
	// commit itself is not abandoned, so a nil error means durable and a
	// non-nil error after fn ran successfully means the outcome is unknown
	// only if it wraps context.Canceled/DeadlineExceeded.
	Update(ctx context.Context, fn func(Writer) error) error
	// Close waits for pending commits and releases the backend.
	Close() error
}

// CurrentReader is implemented by backends that read current versions
// faster alone than inside a View (from a cache of them, say).
type CurrentReader interface {
	// ReadCurrent returns what Reader.CurrentMany returns in a View of
	// its own: the latest versions, delete markers included, of those of
	// ids that exist, in the order of ids, all from one snapshot.
	ReadCurrent(ctx context.Context, typ string, ids []string) ([]Version, error)
}

// Reader reads a snapshot.
type Reader interface {
	// Current returns the latest version of a resource, delete markers
	// included, or ErrNotFound.
	Current(typ, id string) (Version, error)
	// CurrentMany returns the latest versions, delete markers included,
	// of those of ids (resources of typ) that exist, in the order of ids
	// (an id given twice is returned twice): Current for many ids at the
	// cost of one query.
	CurrentMany(typ string, ids []string) ([]Version, error)
	// Get returns one version of a resource, or ErrNotFound.
	Get(typ, id string, vid int64) (Version, error)
	// History returns versions newest first (by Seq) for the query.
	History(q HistoryQuery) ([]Version, error)
	// Match returns, in ascending id order, the ids of resources of q.Type
	// whose current (not deleted) version carries, for every group in q.All,
	// at least one of that group's tokens.
	Match(q MatchQuery) ([]string, error)
	// Count returns how many resources Match would return without a limit
	// (q.After still applies).
	Count(q MatchQuery) (int, error)
	// Carried returns, for each of ids (resources of typ) whose current,
	// not deleted version carries any of among, the positions in among of
	// the tokens it carries, ascending. Ids carrying none are absent.
	Carried(typ string, ids []string, among []Token) (map[string][]int, error)
	// Meta returns the value stored under key, or ErrNotFound.
	Meta(key string) ([]byte, error)
	// MetaPrefix returns all keys, in ascending order, that start with
	// prefix, with their values.
	MetaPrefix(prefix string) ([]KV, error)
	// AuditSize returns the number of audit leaves.
	AuditSize() (int64, error)
	// AuditLeaves returns the leaves with index in [from, to). It fails
	// (ErrNotFound if to > AuditSize) rather than return fewer leaves,
	// except on a store whose audit rows were removed behind its back
	// (tampering): it then returns the rows present, in index order, so
	// that audit verification can name the first missing one. Callers
	// that need a dense range check the count.
	AuditLeaves(from, to int64) ([][]byte, error)
}

// Writer writes inside a transaction. It reads its own writes.
type Writer interface {
	Reader
	// Put stores v as the new current version of (v.Type, v.ID) and replaces
	// that resource's index tokens with tokens (cleared for delete markers).
	// It fails with ErrConflict unless v.VID is one more than the current
	// version (or 1 for a new resource). It returns v with Seq set.
	Put(v Version, tokens []Token) (Version, error)
	// Reindex replaces the index tokens of the current version of (typ,
	// id) with tokens, writing no new version. It fails with ErrConflict
	// unless that version is vid and not a delete marker (a concurrent
	// write indexed the resource itself).
	Reindex(typ, id string, vid int64, tokens []Token) error
	// SetMeta stores value under key, replacing any previous value.
	SetMeta(key string, value []byte) error
	// CreateMeta stores value under key, or fails with ErrExists.
	CreateMeta(key string, value []byte) error
	// DeleteMeta removes key; absent keys are not an error.
	DeleteMeta(key string) error
	// AppendAudit appends a leaf to the audit log and returns its index
	// (0-based, dense, in commit order).
	AppendAudit(leaf []byte) (int64, error)
}

// InOrder returns found's versions in the order of ids, skipping the ids
// found lacks and repeating those ids repeats, for backends implementing
// CurrentMany.
func InOrder(ids []string, found map[string]Version) []Version {
	out := make([]Version, 0, len(found))
	for _, id := range ids {
		if v, ok := found[id]; ok {
			out = append(out, v)
		}
	}
	return out
}

// TokenPositions maps each token of among to its first position, for
// backends implementing Carried.
func TokenPositions(among []Token) map[string]int {
	pos := make(map[string]int, len(among))
	for i, t := range among {
		if _, dup := pos[string(t)]; !dup {
			pos[string(t)] = i
		}
	}
	return pos
}

// KV is one metadata entry.
type KV struct {
	Key   string
	Value []byte
}

// HistoryQuery selects versions for History. Type and ID narrow the scope:
// both empty means the whole store, ID alone is invalid.
type HistoryQuery struct {
	Type, ID  string
	Since     time.Time // only versions updated at or after Since (zero: all)
	BeforeSeq int64     // only versions with Seq < BeforeSeq (0: no bound); for paging
	Limit     int       // at most Limit versions (0: no limit)
}

// MatchQuery selects resources by index tokens for Match and Count.
type MatchQuery struct {
	Type  string
	All   [][]Token // AND of groups, each an OR of tokens; empty: every resource of Type
	After string    // only ids greater than After (for paging)
	Limit int       // at most Limit ids (0: no limit)
	// Alone promises that the View reads nothing after this Match, so
	// that an answer a backend gives from memory need not be tied to a
	// snapshot of the View for later reads (it still reflects a state
	// committed while the View ran). Count ignores it.
	Alone bool
}
