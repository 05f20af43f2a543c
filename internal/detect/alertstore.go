package detect

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store"
)

// Alert statuses, in the order a review moves through them.
const (
	StatusNew             = "new"
	StatusInvestigating   = "investigating"
	StatusFalsePositive   = "closed-false-positive"
	StatusPolicyViolation = "closed-policy-violation"
	StatusBreach          = "closed-breach"
	alertPrefix           = "alert/"
	cursorKey             = "detect/live-cursor"
	alertKeyName          = "monitor"
	maxNote               = 4000
)

// Statuses lists the valid alert statuses.
var Statuses = []string{StatusNew, StatusInvestigating, StatusFalsePositive, StatusPolicyViolation, StatusBreach}

// ErrNoAlert means no alert has the id asked for.
var ErrNoAlert = errors.New("detect: no such alert")

// ErrBadReview means a review names an unknown status or its note is too long.
var ErrBadReview = errors.New("detect: invalid review")

// Note is one review step of an alert.
type Note struct {
	Time   time.Time `json:"time"`
	By     string    `json:"by"`
	Status string    `json:"status"`
	Note   string    `json:"note,omitempty"`
}

// StoredAlert is an alert raised by the live detector as the store keeps
// it (sealed): its findings, and the review that officers add.
type StoredAlert struct {
	ID        string    `json:"id"`
	CaseID    string    `json:"case_id"`
	UserID    string    `json:"user_id"`
	PatientID string    `json:"patient_id,omitempty"`
	Rules     []string  `json:"rules"`
	Score     float64   `json:"score"`
	Severity  string    `json:"severity"`
	Reasons   []string  `json:"reasons"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Raised    time.Time `json:"raised"` // when the detector first stored it
	Events    int       `json:"events"`
	Leaf      uint64    `json:"leaf"` // highest audit leaf merged; replays at or below it change nothing
	Status    string    `json:"status"`
	Notes     []Note    `json:"notes,omitempty"`
}

// AlertStore keeps alerts in the store's metadata, sealed by the barrier
// under the "monitor" data key. The store sees a blind name per alert (a
// keyed token of its id) and ciphertext: no user id, patient id, rule or
// note. Each record is bound to its name, so records cannot be swapped.
// It is safe for concurrent use.
type AlertStore struct {
	st store.Backend
	b  *barrier.Barrier
}

// NewAlertStore returns an AlertStore over st sealed by b.
func NewAlertStore(ctx context.Context, st store.Backend, b *barrier.Barrier) (*AlertStore, error) {
	// Create the data key now, so that sealing inside a transaction never
	// needs a write of its own.
	if _, err := b.KeyFor(ctx, alertKeyName); err != nil {
		return nil, err
	}
	return &AlertStore{st: st, b: b}, nil
}

func (s *AlertStore) name(id string) string {
	return alertPrefix + hex.EncodeToString(s.b.Token("alert", id))
}

func (s *AlertStore) seal(ctx context.Context, name string, a *StoredAlert) ([]byte, error) {
	pt, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	return s.b.Seal(ctx, alertKeyName, barrier.Context("alert", name), pt)
}

func (s *AlertStore) open(ctx context.Context, name string, sealed []byte) (*StoredAlert, error) {
	pt, err := s.b.Open(ctx, barrier.Context("alert", name), sealed)
	if err != nil {
		return nil, fmt.Errorf("detect: opening alert: %w", err)
	}
	var a StoredAlert
	if err := json.Unmarshal(pt, &a); err != nil {
		return nil, fmt.Errorf("detect: alert record: %w", err)
	}
	return &a, nil
}

// get reads the alert stored under name in r, or nil.
func (s *AlertStore) get(ctx context.Context, r store.Reader, name string) (*StoredAlert, error) {
	sealed, err := r.Meta(name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.open(ctx, name, sealed)
}

// List returns up to limit alerts (0: all), most recently seen first.
func (s *AlertStore) List(ctx context.Context, limit int) ([]*StoredAlert, error) {
	var kvs []store.KV
	if err := s.st.View(ctx, func(r store.Reader) (err error) {
		kvs, err = r.MetaPrefix(alertPrefix)
		return err
	}); err != nil {
		return nil, err
	}
	out := make([]*StoredAlert, 0, len(kvs))
	for _, kv := range kvs {
		a, err := s.open(ctx, kv.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return newestFirst(out, limit, func(a *StoredAlert) (time.Time, string) { return a.LastSeen, a.ID }), nil
}

// Get returns one alert, or ErrNoAlert.
func (s *AlertStore) Get(ctx context.Context, id string) (*StoredAlert, error) {
	var a *StoredAlert
	err := s.st.View(ctx, func(r store.Reader) (err error) {
		a, err = s.get(ctx, r, s.name(id))
		return err
	})
	if err == nil && a == nil {
		err = ErrNoAlert
	}
	return a, err
}

// Review sets an alert's status and adds a note by a reviewer, and in the
// same transaction appends the audit leaf that records the review (leaf
// may be nil). It fails with ErrNoAlert or ErrBadReview and then changes
// nothing.
func (s *AlertStore) Review(ctx context.Context, id string, n Note, leaf []byte) (*StoredAlert, error) {
	if !slices.Contains(Statuses, n.Status) || len(n.Note) > maxNote {
		return nil, ErrBadReview
	}
	name := s.name(id)
	var out *StoredAlert
	err := s.st.Update(ctx, func(w store.Writer) error {
		a, err := s.get(ctx, w, name)
		if err != nil {
			return err
		}
		if a == nil {
			return ErrNoAlert
		}
		a.Status = n.Status
		a.Notes = append(a.Notes, n)
		sealed, err := s.seal(ctx, name, a)
		if err != nil {
			return err
		}
		if err := w.SetMeta(name, sealed); err != nil {
			return err
		}
		if leaf != nil {
			if _, err := w.AppendAudit(leaf); err != nil {
				return err
			}
		}
		out = a
		return nil
	})
	return out, err
}

// Cursor returns the number of audit leaves the live detector has
// processed (the index of the next one).
func (s *AlertStore) Cursor(ctx context.Context) (uint64, error) {
	var n uint64
	err := s.st.View(ctx, func(r store.Reader) error {
		v, err := r.Meta(cursorKey)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		n, err = strconv.ParseUint(string(v), 10, 64)
		return err
	})
	return n, err
}

// commit merges findings into their alerts and moves the cursor to next,
// in one transaction, so that a crash either keeps both or neither. It
// returns the alerts that are new or gained a rule (to route).
func (s *AlertStore) commit(ctx context.Context, fs []finding, next uint64, now time.Time) ([]*StoredAlert, error) {
	var changed []*StoredAlert
	err := s.st.Update(ctx, func(w store.Writer) error {
		changed = changed[:0]
		cur := map[string]*StoredAlert{}
		fresh := map[string]bool{}
		for i := range fs {
			f := &fs[i]
			id := s.publicID(f.id)
			name := s.name(id)
			a, ok := cur[name]
			if !ok {
				var err error
				if a, err = s.get(ctx, w, name); err != nil {
					return err
				}
				if a == nil {
					a = &StoredAlert{ID: id, CaseID: CaseID(f.user), UserID: f.user, PatientID: f.patient,
						FirstSeen: f.t, LastSeen: f.t, Raised: now, Status: StatusNew}
					fresh[name] = true
				} else if f.leaf <= a.Leaf {
					continue // already merged before a restart
				}
				cur[name] = a
			}
			if a.merge(f) {
				fresh[name] = true
			}
		}
		for name, a := range cur {
			sealed, err := s.seal(ctx, name, a)
			if err != nil {
				return err
			}
			if err := w.SetMeta(name, sealed); err != nil {
				return err
			}
			if fresh[name] {
				changed = append(changed, a)
			}
		}
		// The cases and the routing outbox change with the alerts.
		if err := s.touchCases(ctx, w, changed, now); err != nil {
			return err
		}
		if err := s.enqueue(ctx, w, changed); err != nil {
			return err
		}
		return w.SetMeta(cursorKey, []byte(strconv.FormatUint(next, 10)))
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// publicID turns a finding's id (a plain hash of user, patient, rule and
// day, which anyone could recompute from guessed ids) into the alert id
// that leaves in the API, webhooks, emails and syslog: keyed by the
// barrier's index key, so an alert id confirms nothing about who was
// accessed. It is stable, so replays merge into the same alert.
func (s *AlertStore) publicID(findingID string) string {
	return "al-" + hex.EncodeToString(s.b.Token("alert-id", findingID)[:8])
}

// merge adds a finding to the alert; it reports whether a rule was added.
func (a *StoredAlert) merge(f *finding) bool {
	if a.Events > 0 && f.leaf <= a.Leaf {
		return false
	}
	a.Events++
	a.Leaf = max(a.Leaf, f.leaf)
	if f.t.Before(a.FirstSeen) {
		a.FirstSeen = f.t
	}
	if f.t.After(a.LastSeen) {
		a.LastSeen = f.t
	}
	added := false
	for _, r := range f.rules {
		if !slices.Contains(a.Rules, r) {
			a.Rules = append(a.Rules, r)
			added = true
		}
	}
	if added {
		a.Score, a.Severity, a.Reasons = scoreRules(a.Rules)
	}
	return added
}

// newestFirst sorts items by last seen, newest first (ties by id), and
// keeps the first limit (0: all).
func newestFirst[T any](items []T, limit int, key func(T) (time.Time, string)) []T {
	slices.SortStableFunc(items, func(a, b T) int {
		ta, ia := key(a)
		tb, ib := key(b)
		if c := tb.Compare(ta); c != 0 {
			return c
		}
		return strings.Compare(ia, ib)
	})
	if limit > 0 && len(items) > limit {
		items = items[:limit]
	}
	return items
}
