package fhirapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/detect"
)

// Cases is the live detector's cases (*detect.AlertStore), found on the
// configured Alerts by type assertion: one case per user holds all the
// user's alerts.
type Cases interface {
	// Cases returns up to limit cases (0: all), most recently seen first.
	Cases(ctx context.Context, limit int) ([]*detect.StoredCase, error)
	// Case returns one case and its alerts, or detect.ErrNoCase.
	Case(ctx context.Context, id string) (*detect.StoredCase, []*detect.StoredAlert, error)
	// SetCaseStatus sets a case's status with a note and appends leaf to
	// the audit log in the same transaction; detect.ErrNoCase and
	// detect.ErrBadReview change nothing.
	SetCaseStatus(ctx context.Context, id string, n detect.Note, leaf []byte) (*detect.StoredCase, error)
}

// caseRoutes registers the monitoring cases, for whoever may read the
// audit log (privacy officers, security officers, auditors: policy action
// audit-read). Every call is decided by the policy and audited; notes are
// the reviewers' own text, kept sealed and never put in the audit log.
//
//	GET  /fhir/_cases[?status=S][&_count=N]  cases, most recently seen first (JSON: {"cases": [...]})
//	GET  /fhir/_cases/{id}                   one case and its alerts (JSON: {"case": {...}, "alerts": [...]})
//	POST /fhir/_cases/{id}/$status           {"status": "investigating", "note": "..."}; the status is audited, the note is not
func (a *API) caseRoutes(h func(string, func(*call) error)) {
	h("GET /fhir/_cases", a.casesList)
	// GET /fhir/_cases/{id} is served by read (see there).
	h("POST /fhir/_cases/{id}/$status", a.caseStatus)
}

// cases returns the case store, or a 404 when the detector is not running.
func (a *API) cases() (Cases, error) {
	if cs, ok := a.Alerts.(Cases); ok {
		return cs, nil
	}
	return nil, errorf(http.StatusNotFound, "not-supported", "the live detector is not running on this server")
}

// casesJSON is the body of GET /fhir/_cases.
type casesJSON struct {
	Cases []*detect.StoredCase `json:"cases"`
}

func (a *API) casesList(c *call) error {
	c.ev.Interaction, c.ev.Action = "cases-list", "R"
	status, limit, err := monitorListParams(c)
	if err != nil {
		return err
	}
	if err := a.decide(c, actAuditRead, "AuditEvent", "", ""); err != nil {
		return err
	}
	cs, err := a.cases()
	if err != nil {
		return err
	}
	all, err := cs.Cases(c.ctx, 0)
	if err != nil {
		return err
	}
	out := withStatus(all, status, limit, func(k *detect.StoredCase) string { return k.Status })
	if err := a.record(c); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, casesJSON{Cases: out})
	return nil
}

// caseJSON is the body of GET /fhir/_cases/{id}.
type caseJSON struct {
	Case   *detect.StoredCase    `json:"case"`
	Alerts []*detect.StoredAlert `json:"alerts"`
}

func (a *API) caseRead(c *call) error {
	c.ev.Interaction, c.ev.Action = "case-read", "R"
	id := c.r.PathValue("id")
	if !validCaseID(id) {
		return errorf(http.StatusBadRequest, "value", "not a case id (case-USER)")
	}
	if err := a.decide(c, actAuditRead, "AuditEvent", "", ""); err != nil {
		return err
	}
	cs, err := a.cases()
	if err != nil {
		return err
	}
	k, alerts, err := cs.Case(c.ctx, id)
	if errors.Is(err, detect.ErrNoCase) {
		return errorf(http.StatusNotFound, "not-found", "no case with that id")
	}
	if err != nil {
		return err
	}
	c.ev.Entities = []string{"Case/" + id}
	if err := a.record(c); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, caseJSON{Case: k, Alerts: alerts})
	return nil
}

func (a *API) caseStatus(c *call) error {
	c.ev.Interaction, c.ev.Action = "case-status", "U"
	id := c.r.PathValue("id")
	if !validCaseID(id) {
		return errorf(http.StatusBadRequest, "value", "not a case id (case-USER)")
	}
	rv, err := c.review()
	if err != nil {
		return err
	}
	if err := a.decide(c, actAuditRead, "AuditEvent", "", ""); err != nil {
		return err
	}
	cs, err := a.cases()
	if err != nil {
		return err
	}
	// The event names the case and its new status; the note may hold
	// anything and stays sealed in the case.
	c.ev.Entities = []string{"Case/" + id}
	c.ev.OutcomeDesc = "case status set to " + rv.Status
	leaf := c.ev.Leaf()
	k, err := cs.SetCaseStatus(c.ctx, id, detect.Note{Time: time.Now().UTC(), By: c.who.UserID, Status: rv.Status, Note: rv.Note}, leaf)
	switch {
	case errors.Is(err, detect.ErrNoCase):
		c.ev.Entities, c.ev.OutcomeDesc = nil, ""
		return errorf(http.StatusNotFound, "not-found", "no case with that id")
	case errors.Is(err, detect.ErrBadReview):
		c.ev.Entities, c.ev.OutcomeDesc = nil, ""
		return errorf(http.StatusBadRequest, "value", "invalid status change")
	case err != nil:
		// Neither the change nor its audit record was kept.
		c.ev.Entities, c.ev.OutcomeDesc = nil, ""
		a.Log.Error("case status change failed", "err", err.Error())
		return errorf(http.StatusServiceUnavailable, "transient", "the status could not be stored; nothing changed")
	}
	writeJSON(c.w, http.StatusOK, k)
	return nil
}

// validCaseID accepts "case-" and a user id of printable characters
// without '/' (at most 256 bytes).
func validCaseID(id string) bool {
	user, ok := strings.CutPrefix(id, "case-")
	if !ok || user == "" || len(user) > 256 {
		return false
	}
	for _, r := range user {
		if r < 0x21 || r == 0x7f || r == '/' {
			return false
		}
	}
	return true
}
