package fhirapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/phivault/phivault/internal/detect"
)

// Alerts is the live detector's alert store (*detect.AlertStore).
type Alerts interface {
	// List returns up to limit alerts (0: all), most recently seen first.
	List(ctx context.Context, limit int) ([]*detect.StoredAlert, error)
	// Review sets an alert's status with a note and appends leaf to the
	// audit log in the same transaction; detect.ErrNoAlert and
	// detect.ErrBadReview change nothing.
	Review(ctx context.Context, id string, n detect.Note, leaf []byte) (*detect.StoredAlert, error)
}

// alertRoutes registers the privacy and threat monitoring alerts, read
// and reviewed by whoever may read the audit log (privacy officers,
// security officers, auditors: policy action audit-read). Alerts name
// users and patients by id only; notes are the reviewers' own text.
//
//	GET  /fhir/_alerts[?status=S][&_count=N]  alerts, most recently seen first (JSON: {"alerts": [...]})
//	POST /fhir/_alerts/{id}/$review           review: {"status": "investigating", "note": "..."}; the new status is audited, the note is not
func (a *API) alertRoutes(h func(string, func(*call) error)) {
	h("GET /fhir/_alerts", a.alertsList)
	h("POST /fhir/_alerts/{id}/$review", a.alertReview)
}

// alertsJSON is the body of GET /fhir/_alerts.
type alertsJSON struct {
	Alerts []*detect.StoredAlert `json:"alerts"`
}

func (a *API) alertsList(c *call) error {
	c.ev.Interaction, c.ev.Action = "alerts-list", "R"
	status, limit, err := monitorListParams(c)
	if err != nil {
		return err
	}
	if err := a.decide(c, actAuditRead, "AuditEvent", "", ""); err != nil {
		return err
	}
	if a.Alerts == nil {
		return errorf(http.StatusNotFound, "not-supported", "the live detector is not running on this server")
	}
	all, err := a.Alerts.List(c.ctx, 0)
	if err != nil {
		return err
	}
	out := withStatus(all, status, limit, func(al *detect.StoredAlert) string { return al.Status })
	if err := a.record(c); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, alertsJSON{Alerts: out})
	return nil
}

// monitorListParams reads the query of the alert and case lists: an
// optional status (one of detect.Statuses) and _count (1 to 1000,
// default 100).
func monitorListParams(c *call) (status string, limit int, err error) {
	q := c.r.URL.Query()
	status = q.Get("status")
	if status != "" && !slices.Contains(detect.Statuses, status) {
		return "", 0, errorf(http.StatusBadRequest, "value", statusHint)
	}
	limit = 100
	if s := q.Get("_count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return "", 0, errorf(http.StatusBadRequest, "value", "_count must be an integer from 1 to 1000")
		}
		limit = n
	}
	return status, limit, nil
}

// withStatus returns the first limit items of all whose status is status
// (any status when it is empty), in order.
func withStatus[T any](all []T, status string, limit int, statusOf func(T) string) []T {
	out := make([]T, 0, min(limit, len(all)))
	for _, it := range all {
		if len(out) == limit {
			break
		}
		if status == "" || statusOf(it) == status {
			out = append(out, it)
		}
	}
	return out
}

// reviewJSON is the body of POST /fhir/_alerts/{id}.
type reviewJSON struct {
	Status string `json:"status"`
	Note   string `json:"note"`
}

// statusHint names the statuses a review or a case may set (detect.Statuses).
const statusHint = "status must be one of new, investigating, closed-false-positive, closed-policy-violation, closed-breach"

// review reads the body of a review of an alert or a change of a case's
// status, and checks it: a known status and a note of at most 4000 bytes.
func (c *call) review() (reviewJSON, error) {
	var rv reviewJSON
	b, err := c.body("application/json", "application/fhir+json")
	if err != nil {
		return rv, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rv); err != nil || dec.More() {
		return rv, errorf(http.StatusBadRequest, "structure", `the body must be {"status": "...", "note": "..."}`)
	}
	if !slices.Contains(detect.Statuses, rv.Status) {
		return rv, errorf(http.StatusBadRequest, "value", statusHint)
	}
	if len(rv.Note) > 4000 {
		return rv, errorf(http.StatusBadRequest, "value", "the note is longer than 4000 bytes")
	}
	return rv, nil
}

func (a *API) alertReview(c *call) error {
	c.ev.Interaction, c.ev.Action = "alert-review", "U"
	id := c.r.PathValue("id")
	if !validAlertID(id) {
		return errorf(http.StatusBadRequest, "value", "not an alert id")
	}
	rv, err := c.review()
	if err != nil {
		return err
	}
	if err := a.decide(c, actAuditRead, "AuditEvent", "", ""); err != nil {
		return err
	}
	if a.Alerts == nil {
		return errorf(http.StatusNotFound, "not-supported", "the live detector is not running on this server")
	}
	// The event names the alert and its new status; the note may hold
	// anything and stays sealed in the alert.
	c.ev.Entities = []string{"Alert/" + id}
	c.ev.OutcomeDesc = "alert status set to " + rv.Status
	leaf := c.ev.Leaf()
	al, err := a.Alerts.Review(c.ctx, id, detect.Note{Time: time.Now().UTC(), By: c.who.UserID, Status: rv.Status, Note: rv.Note}, leaf)
	switch {
	case errors.Is(err, detect.ErrNoAlert):
		c.ev.OutcomeDesc = ""
		return errorf(http.StatusNotFound, "not-found", "no alert with that id")
	case errors.Is(err, detect.ErrBadReview):
		c.ev.OutcomeDesc = ""
		return errorf(http.StatusBadRequest, "value", "invalid review")
	case err != nil:
		// Neither the review nor its audit record was kept.
		c.ev.OutcomeDesc = ""
		a.Log.Error("alert review failed", "err", err.Error())
		return errorf(http.StatusServiceUnavailable, "transient", "the review could not be stored; nothing changed")
	}
	writeJSON(c.w, http.StatusOK, al)
	return nil
}

// validAlertID accepts the detector's ids: "al-" and 16 lowercase hex digits.
func validAlertID(id string) bool {
	if len(id) != 19 || id[:3] != "al-" {
		return false
	}
	for _, r := range id[3:] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}
