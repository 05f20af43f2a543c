package account

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store"
)

// Options configure a Directory. Start from DefaultOptions: its zero value
// would switch the training gate off.
type Options struct {
	Now   func() time.Time // clock (tests control it); nil: time.Now
	Audit *audit.Log       // required: logins, lockouts and every change are audited

	// The training gate: Valid reports Trained only while a record of
	// TrainingCourse is unexpired. Off, every account counts as trained.
	TrainingRequired bool
	TrainingCourse   string

	// Per account (whether or not it exists): after DelayAfter failures
	// within FailureWindow, each further attempt must wait 1s, 2s, 4s ...;
	// after LockAfter the account is locked for LockFor (kept in the
	// record, so a restart does not unlock it) or until Unlock.
	DelayAfter, LockAfter int
	FailureWindow         time.Duration
	LockFor               time.Duration
	// Per source: more than SourceLimit failures (any accounts) within
	// SourceWindow block the source for SourceBlock.
	SourceLimit  int
	SourceWindow time.Duration
	SourceBlock  time.Duration
	// MaxTracked bounds the accounts and sources tracked in memory.
	MaxTracked int

	// Refresh is how old a cached account may be before Valid reads it
	// again (other nodes may have changed it). At most 2s.
	Refresh time.Duration
	// Dormant is the idle time after which the review calls an account
	// dormant.
	Dormant time.Duration

	argon argonParams // tests lower the cost; zero: defaultArgon
}

// DefaultOptions returns the defaults with the given audit log.
func DefaultOptions(log *audit.Log) Options {
	return Options{
		Audit: log, TrainingRequired: true, TrainingCourse: "hipaa",
		DelayAfter: 5, LockAfter: 10, FailureWindow: 15 * time.Minute, LockFor: 15 * time.Minute,
		SourceLimit: 20, SourceWindow: 10 * time.Minute, SourceBlock: 15 * time.Minute,
		MaxTracked: 100_000, Refresh: 2 * time.Second, Dormant: 90 * 24 * time.Hour,
	}
}

// Meta keys: blind names (HMAC of the user id under the index key), so the
// store sees neither user ids nor how many MFA records belong to whom.
const (
	accountMeta = "account/"
	mfaMeta     = "mfa/"
	keyName     = "system"
)

// Directory is the account store: sealed records, password checks with
// throttling, and the per-request validity check. It is safe for
// concurrent use; several Directories (nodes) may share one store.
type Directory struct {
	st    store.Backend
	b     *barrier.Barrier
	opts  Options
	now   func() time.Time
	dummy string // PHC of a random password: unknown users are checked against it

	onHash func(argonParams) // test hook: every Argon2 computation

	thr throttle

	cmu   sync.RWMutex
	cache map[string]cached
	gen   uint64 // moves on at every invalidation
}

// record is what is sealed per account: the account and its password hash.
type record struct {
	Account Account `json:"account"`
	Hash    string  `json:"hash,omitempty"`
}

// Open returns a Directory over st sealed by b. Zero tunables in opts get
// DefaultOptions' values; opts.Audit is required.
func Open(ctx context.Context, st store.Backend, b *barrier.Barrier, opts Options) (*Directory, error) {
	if opts.Audit == nil {
		return nil, errors.New("account: a directory needs an audit log")
	}
	def := DefaultOptions(opts.Audit)
	setDefault(&opts.DelayAfter, def.DelayAfter)
	setDefault(&opts.LockAfter, def.LockAfter)
	setDefault(&opts.FailureWindow, def.FailureWindow)
	setDefault(&opts.LockFor, def.LockFor)
	setDefault(&opts.SourceLimit, def.SourceLimit)
	setDefault(&opts.SourceWindow, def.SourceWindow)
	setDefault(&opts.SourceBlock, def.SourceBlock)
	setDefault(&opts.MaxTracked, def.MaxTracked)
	setDefault(&opts.Refresh, def.Refresh)
	setDefault(&opts.Dormant, def.Dormant)
	setDefault(&opts.TrainingCourse, def.TrainingCourse)
	opts.Refresh = min(opts.Refresh, 2*time.Second)
	if opts.argon == (argonParams{}) {
		opts.argon = defaultArgon
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// Create the system key now: sealing inside a transaction must not
	// need a write of its own.
	if _, err := b.KeyFor(ctx, keyName); err != nil {
		return nil, err
	}
	d := &Directory{st: st, b: b, opts: opts, now: opts.Now, cache: map[string]cached{}}
	d.thr = newThrottle(opts)
	dummy := make([]byte, 24)
	d.dummy = d.hashPassword(Password(hex.EncodeToString(dummy)), opts.argon)
	return d, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func (d *Directory) accountKey(id string) string {
	return accountMeta + hex.EncodeToString(d.b.Token("account", id))
}

func (d *Directory) mfaKey(id string) string {
	return mfaMeta + hex.EncodeToString(d.b.Token("account-mfa", id))
}

// load reads and opens the record of id; sealed is the stored value (for
// compare-and-set), nil when there is none (ErrNotFound).
func (d *Directory) load(ctx context.Context, key string, v any) (sealed []byte, err error) {
	err = d.st.View(ctx, func(r store.Reader) error {
		sealed, err = r.Meta(key)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return sealed, d.open(ctx, key, sealed, v)
}

func (d *Directory) open(ctx context.Context, key string, sealed []byte, v any) error {
	pt, err := d.b.Open(ctx, barrier.Context("account", key), sealed)
	if err != nil {
		return fmt.Errorf("account: open record: %w", err)
	}
	return json.Unmarshal(pt, v)
}

func (d *Directory) seal(ctx context.Context, key string, v any) ([]byte, error) {
	pt, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return d.b.Seal(ctx, keyName, barrier.Context("account", key), pt)
}

var errRace = errors.New("account: record changed concurrently")

// put writes value under key if the stored value is still old (nil: absent).
func (d *Directory) put(ctx context.Context, key string, old, value []byte) error {
	return d.st.Update(ctx, func(tx store.Writer) error {
		cur, err := tx.Meta(key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			cur = nil
		case err != nil:
			return err
		}
		if (cur == nil) != (old == nil) || !bytes.Equal(cur, old) {
			return errRace
		}
		return tx.SetMeta(key, value)
	})
}

// update applies fn to the record of id atomically (retrying when another
// writer got there first) and drops the cached entry.
func (d *Directory) update(ctx context.Context, id string, fn func(*record) error) (Account, error) {
	key := d.accountKey(id)
	defer d.invalidate(id)
	for range 10 {
		var rec record
		old, err := d.load(ctx, key, &rec)
		if err != nil {
			return Account{}, err
		}
		if err := fn(&rec); err != nil {
			return Account{}, err
		}
		sealed, err := d.seal(ctx, key, &rec)
		if err != nil {
			return Account{}, err
		}
		if err := d.put(ctx, key, old, sealed); errors.Is(err, errRace) {
			continue
		} else if err != nil {
			return Account{}, err
		}
		return rec.Account, nil
	}
	return Account{}, errRace
}

// record audits an administrative or login event; its error fails the
// operation (fail-closed).
func (d *Directory) audit(ctx context.Context, e audit.Event) error {
	e.Time = d.now()
	if e.Outcome == "" {
		e.Outcome = audit.Success
		e.Allowed = true
	}
	return d.opts.Audit.Record(ctx, &e)
}

// Get returns the account id, or ErrNotFound.
func (d *Directory) Get(ctx context.Context, id string) (Account, error) {
	var rec record
	if _, err := d.load(ctx, d.accountKey(id), &rec); err != nil {
		return Account{}, err
	}
	return rec.Account, nil
}

// List returns every account, ordered by id.
func (d *Directory) List(ctx context.Context) ([]Account, error) {
	var kvs []store.KV
	if err := d.st.View(ctx, func(r store.Reader) (err error) {
		kvs, err = r.MetaPrefix(accountMeta)
		return err
	}); err != nil {
		return nil, err
	}
	out := make([]Account, 0, len(kvs))
	for _, kv := range kvs {
		var rec record
		if err := d.open(ctx, kv.Key, kv.Value, &rec); err != nil {
			return nil, err
		}
		out = append(out, rec.Account)
	}
	slices.SortFunc(out, func(a, b Account) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
