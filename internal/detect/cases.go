package detect

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store"
)

const casePrefix = "case/"

// ErrNoCase means no case has the id asked for.
var ErrNoCase = errors.New("detect: no such case")

// CaseID names the case that holds every alert of user. The batch job
// (monitor run, monitor alerts) and the live detector use the same id, so
// a user's case is one case wherever it was raised.
func CaseID(user string) string { return "case-" + user }

// caseRecord is the part of a case that officers manage, stored sealed
// like an alert under a blind name: when it was opened, its status and
// the notes. Its alerts are found by their CaseID.
type caseRecord struct {
	ID     string    `json:"id"`
	UserID string    `json:"user_id"`
	Opened time.Time `json:"opened"`
	Status string    `json:"status"`
	Notes  []Note    `json:"notes,omitempty"`
}

// StoredCase is one user's case as the live detector keeps it and
// officers see it: every alert of the user (ids, as in the batch job's
// cases.jsonl), the highest severity and score among them, the status and
// the notes.
type StoredCase struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Status    string    `json:"status"`
	Severity  string    `json:"severity"`
	Score     float64   `json:"score"`
	Opened    time.Time `json:"opened"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Alerts    []string  `json:"alerts"`
	Notes     []Note    `json:"notes,omitempty"`
}

var severityRank = map[string]int{"low": 1, "medium": 2, "high": 3}

func (s *AlertStore) caseName(id string) string {
	return casePrefix + hex.EncodeToString(s.b.Token("case", id))
}

func (s *AlertStore) getCase(ctx context.Context, r store.Reader, name string) (*caseRecord, error) {
	sealed, err := r.Meta(name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pt, err := s.b.Open(ctx, barrier.Context("case", name), sealed)
	if err != nil {
		return nil, fmt.Errorf("detect: opening case: %w", err)
	}
	var c caseRecord
	if err := json.Unmarshal(pt, &c); err != nil {
		return nil, fmt.Errorf("detect: case record: %w", err)
	}
	return &c, nil
}

func (s *AlertStore) putCase(ctx context.Context, w store.Writer, c *caseRecord) error {
	name := s.caseName(c.ID)
	pt, err := json.Marshal(c)
	if err != nil {
		return err
	}
	sealed, err := s.b.Seal(ctx, alertKeyName, barrier.Context("case", name), pt)
	if err != nil {
		return err
	}
	return w.SetMeta(name, sealed)
}

// touchCases opens the case of every alert in changed that has none, and
// reopens (status new, with a note by "phivault") a closed case that got
// a new alert or a new rule: a new finding is never buried in a closed
// case. It runs inside commit's transaction.
func (s *AlertStore) touchCases(ctx context.Context, w store.Writer, changed []*StoredAlert, now time.Time) error {
	done := map[string]bool{}
	for _, a := range changed {
		if done[a.CaseID] {
			continue
		}
		done[a.CaseID] = true
		c, err := s.getCase(ctx, w, s.caseName(a.CaseID))
		if err != nil {
			return err
		}
		switch {
		case c == nil:
			c = &caseRecord{ID: a.CaseID, UserID: a.UserID, Opened: now, Status: StatusNew}
		case c.Status == StatusNew || c.Status == StatusInvestigating:
			continue
		default:
			c.Status = StatusNew
			c.Notes = append(c.Notes, Note{Time: now, By: "phivault", Status: StatusNew, Note: "reopened: new finding in alert " + a.ID})
		}
		if err := s.putCase(ctx, w, c); err != nil {
			return err
		}
	}
	return nil
}

// Cases returns up to limit cases (0: all), most recently seen first,
// each with its alert ids but not the alerts.
func (s *AlertStore) Cases(ctx context.Context, limit int) ([]*StoredCase, error) {
	alerts, err := s.List(ctx, 0)
	if err != nil {
		return nil, err
	}
	byID := map[string]*StoredCase{}
	var out []*StoredCase
	for _, a := range alerts {
		c := byID[a.CaseID]
		if c == nil {
			c = &StoredCase{ID: a.CaseID, UserID: a.UserID, Status: StatusNew, FirstSeen: a.FirstSeen, LastSeen: a.LastSeen, Opened: a.Raised}
			byID[a.CaseID] = c
			out = append(out, c)
		}
		c.add(a)
	}
	if err := s.st.View(ctx, func(r store.Reader) error {
		for _, c := range out {
			rec, err := s.getCase(ctx, r, s.caseName(c.ID))
			if err != nil {
				return err
			}
			if rec != nil {
				c.Status, c.Notes, c.Opened = rec.Status, rec.Notes, rec.Opened
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return newestFirst(out, limit, func(k *StoredCase) (time.Time, string) { return k.LastSeen, k.ID }), nil
}

func (c *StoredCase) add(a *StoredAlert) {
	c.Alerts = append(c.Alerts, a.ID)
	if severityRank[a.Severity] > severityRank[c.Severity] {
		c.Severity = a.Severity
	}
	c.Score = max(c.Score, a.Score)
	if a.FirstSeen.Before(c.FirstSeen) {
		c.FirstSeen = a.FirstSeen
	}
	if a.LastSeen.After(c.LastSeen) {
		c.LastSeen = a.LastSeen
	}
	if a.Raised.Before(c.Opened) {
		c.Opened = a.Raised
	}
}

// Case returns one case and its alerts (most recently seen first), or
// ErrNoCase.
func (s *AlertStore) Case(ctx context.Context, id string) (*StoredCase, []*StoredAlert, error) {
	alerts, err := s.List(ctx, 0)
	if err != nil {
		return nil, nil, err
	}
	var c *StoredCase
	var mine []*StoredAlert
	for _, a := range alerts {
		if a.CaseID != id {
			continue
		}
		if c == nil {
			c = &StoredCase{ID: id, UserID: a.UserID, Status: StatusNew, FirstSeen: a.FirstSeen, LastSeen: a.LastSeen, Opened: a.Raised}
		}
		c.add(a)
		mine = append(mine, a)
	}
	if c == nil {
		return nil, nil, ErrNoCase
	}
	err = s.st.View(ctx, func(r store.Reader) error {
		rec, err := s.getCase(ctx, r, s.caseName(id))
		if rec != nil {
			c.Status, c.Notes, c.Opened = rec.Status, rec.Notes, rec.Opened
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return c, mine, nil
}

// SetCaseStatus sets a case's status and adds a note by a reviewer, and in
// the same transaction appends the audit leaf that records it (leaf may be
// nil). It fails with ErrNoCase (no alert belongs to id) or ErrBadReview
// and then changes nothing. The alerts keep their own statuses.
func (s *AlertStore) SetCaseStatus(ctx context.Context, id string, n Note, leaf []byte) (*StoredCase, error) {
	if !slices.Contains(Statuses, n.Status) || len(n.Note) > maxNote {
		return nil, ErrBadReview
	}
	err := s.st.Update(ctx, func(w store.Writer) error {
		c, err := s.getCase(ctx, w, s.caseName(id))
		if err != nil {
			return err
		}
		if c == nil {
			// Alerts stored before cases were kept have no record yet.
			user, err := s.caseUser(ctx, w, id)
			if err != nil {
				return err
			}
			c = &caseRecord{ID: id, UserID: user, Opened: n.Time}
		}
		c.Status = n.Status
		c.Notes = append(c.Notes, n)
		if err := s.putCase(ctx, w, c); err != nil {
			return err
		}
		if leaf != nil {
			if _, err := w.AppendAudit(leaf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c, _, err := s.Case(ctx, id)
	return c, err
}

// caseUser finds the user of case id among the stored alerts, or fails
// with ErrNoCase.
func (s *AlertStore) caseUser(ctx context.Context, r store.Reader, id string) (string, error) {
	kvs, err := r.MetaPrefix(alertPrefix)
	if err != nil {
		return "", err
	}
	for _, kv := range kvs {
		a, err := s.open(ctx, kv.Key, kv.Value)
		if err != nil {
			return "", err
		}
		if a.CaseID == id {
			return a.UserID, nil
		}
	}
	return "", ErrNoCase
}
