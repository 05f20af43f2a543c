package fhirapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/google/uuid"
	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
)

// maxRetries bounds re-planning after a concurrent change.
const maxRetries = 8

func (a *API) read(c *call) error {
	if c.r.PathValue("type") == "AuditEvent" {
		// GET /fhir/AuditEvent/{id} cannot be a route of its own (it would
		// clash with GET /fhir/{type}/_history): the audit log serves it.
		return a.auditEventRead(c)
	}
	if c.r.PathValue("type") == "_cases" {
		// GET /fhir/_cases/{id} cannot be a route of its own: it would
		// clash with GET /fhir/{type}/_history in the mux.
		return a.caseRead(c)
	}
	c.ev.Interaction, c.ev.Action = "read", "R"
	typ, id, err := c.target(true)
	if err != nil {
		return err
	}
	e, err := a.Records.Read(c.ctx, typ, id)
	return a.answerRead(c, typ, id, e, err)
}

func (a *API) vread(c *call) error {
	c.ev.Interaction, c.ev.Action = "vread", "R"
	typ, id, err := c.target(true)
	if err != nil {
		return err
	}
	vid, err := parseETag(`"` + c.r.PathValue("vid") + `"`)
	if err != nil {
		return errorf(http.StatusBadRequest, "value", "invalid version id")
	}
	e, err := a.Records.VRead(c.ctx, typ, id, vid)
	return a.answerRead(c, typ, id, e, err)
}

// answerRead decides, audits and writes the result of a read or vread.
func (a *API) answerRead(c *call, typ, id string, e records.Entry, err error) error {
	switch {
	case errors.Is(err, records.ErrDeleted):
		// Whether a resource was deleted is itself guarded by policy.
		if err := a.decide(c, policy.Read, typ, id, e.Patient); err != nil {
			return err
		}
		return missing(typ, id, err)
	case err != nil:
		return missing(typ, id, err)
	}
	if err := a.decideEntry(c, policy.Read, e); err != nil {
		return err
	}
	c.ev.Entities = []string{versionRef(e)}
	c.ev.Patients = patients(e.Patient)
	body, err := shape(c.r.URL.Query(), e.Body)
	if err != nil {
		return err
	}
	if err := a.record(c); err != nil {
		return err
	}
	setVersionHeaders(c.w, e)
	writeBody(c.w, http.StatusOK, body)
	return nil
}

func (a *API) create(c *call) error {
	c.ev.Interaction, c.ev.Action = "create", "C"
	typ, _, err := c.target(false)
	if err != nil {
		return err
	}
	res, err := c.resource(typ)
	if err != nil {
		return err
	}
	var unless *records.Op
	if cond := c.r.Header.Get("If-None-Exist"); cond != "" {
		q, err := url.ParseQuery(cond)
		if err != nil || len(q) == 0 {
			return errorf(http.StatusBadRequest, "invalid", "If-None-Exist must be a search query such as identifier=system|value")
		}
		ids, check, err := a.find(c, typ, q, 2)
		if err != nil {
			return err
		}
		switch len(ids) {
		case 0:
			unless = &records.Op{Unless: check}
		case 1:
			e, err := a.Records.Read(c.ctx, typ, ids[0])
			if err != nil {
				return err
			}
			c.ev.Interaction, c.ev.Action = "read", "R"
			if err := a.decideEntry(c, policy.Read, e); err != nil {
				return err
			}
			c.ev.Entities, c.ev.Patients = []string{versionRef(e)}, patients(e.Patient)
			if err := a.record(c); err != nil {
				return err
			}
			a.writeResult(c, http.StatusOK, e, false)
			return nil
		default:
			return errorf(http.StatusPreconditionFailed, "duplicate", "If-None-Exist matches more than one resource")
		}
	}
	res["id"] = newID()
	op := records.Op{Type: typ, ID: res["id"].(string), Resource: res, MustCreate: true}
	if unless != nil {
		op.Unless = unless.Unless
	}
	rs, err := a.commit(c, []records.Op{op}, policy.Create)
	if err != nil {
		return err
	}
	a.writeResult(c, http.StatusCreated, rs[0].Entry, true)
	return nil
}

func (a *API) update(c *call) error {
	c.ev.Interaction, c.ev.Action = "update", "U"
	typ, id, ifMatch, err := c.instance()
	if err != nil {
		return err
	}
	res, err := c.resource(typ)
	if err != nil {
		return err
	}
	if rid, _ := res["id"].(string); rid != id {
		return errorf(http.StatusBadRequest, "invalid", "the resource id must equal the id in the URL")
	}
	return a.put(c, typ, id, res, ifMatch)
}

// put writes res as typ/id (update or update-as-create) and answers.
func (a *API) put(c *call, typ, id string, res fhir.Resource, ifMatch int64) error {
	if err := a.checkMove(c, typ, id, res); err != nil {
		return err
	}
	rs, err := a.commit(c, []records.Op{{Type: typ, ID: id, Resource: res, IfMatch: ifMatch}}, policy.Update)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if rs[0].Created {
		status = http.StatusCreated
	}
	a.writeResult(c, status, rs[0].Entry, rs[0].Created)
	return nil
}

// checkMove requires the caller to be allowed to change the resource in the
// compartment it is in now, before it may be rewritten into another one.
func (a *API) checkMove(c *call, typ, id string, _ fhir.Resource) error {
	cur, err := a.Records.Read(c.ctx, typ, id)
	if errors.Is(err, records.ErrNotFound) || errors.Is(err, records.ErrDeleted) {
		return nil
	}
	if err != nil {
		return err
	}
	return a.decideEntry(c, policy.Update, cur)
}

func (a *API) delete(c *call) error {
	c.ev.Interaction, c.ev.Action = "delete", "D"
	typ, id, ifMatch, err := c.instance()
	if err != nil {
		return err
	}
	return a.remove(c, typ, id, ifMatch)
}

func (a *API) remove(c *call, typ, id string, ifMatch int64) error {
	cur, err := a.Records.Read(c.ctx, typ, id)
	if err != nil && !errors.Is(err, records.ErrDeleted) { // deleting again is a no-op
		return missing(typ, id, err)
	}
	req := a.request(c, policy.Delete, cur)
	req.Type, req.ID = typ, id
	if err := a.decideRequest(c, req); err != nil {
		return err
	}
	rs, err := a.commit(c, []records.Op{{Type: typ, ID: id, IfMatch: ifMatch, Patient: cur.Patient}}, policy.Delete)
	if err != nil {
		return err
	}
	if !rs[0].NoOp {
		c.w.Header().Set("ETag", etag(rs[0].VID))
	}
	writeJSON(c.w, http.StatusOK, info("deleted"))
	return nil
}

func (a *API) conditionalUpdate(c *call) error {
	c.ev.Interaction, c.ev.Action = "update", "U"
	typ, _, err := c.target(false)
	if err != nil {
		return err
	}
	q := c.r.URL.Query()
	if len(q) == 0 {
		return errorf(http.StatusBadRequest, "invalid", "a conditional update needs search parameters in the URL")
	}
	res, err := c.resource(typ)
	if err != nil {
		return err
	}
	ids, _, err := a.find(c, typ, q, 2)
	if err != nil {
		return err
	}
	rid, _ := res["id"].(string)
	switch len(ids) {
	case 0:
		if rid == "" {
			rid = newID()
			res["id"] = rid
		}
		return a.put(c, typ, rid, res, 0)
	case 1:
		if rid != "" && rid != ids[0] {
			return errorf(http.StatusBadRequest, "invalid", "the resource id does not match the resource the condition found")
		}
		res["id"] = ids[0]
		return a.put(c, typ, ids[0], res, 0)
	default:
		return errorf(http.StatusPreconditionFailed, "duplicate", "the condition matches more than one resource")
	}
}

func (a *API) conditionalDelete(c *call) error {
	c.ev.Interaction, c.ev.Action = "delete", "D"
	typ, _, err := c.target(false)
	if err != nil {
		return err
	}
	q := c.r.URL.Query()
	if len(q) == 0 {
		return errorf(http.StatusBadRequest, "invalid", "a conditional delete needs search parameters in the URL")
	}
	ids, _, err := a.find(c, typ, q, 2)
	if err != nil {
		return err
	}
	switch len(ids) {
	case 0:
		if err := a.decide(c, policy.Delete, typ, "", ""); err != nil {
			return err
		}
		if err := a.record(c); err != nil {
			return err
		}
		writeJSON(c.w, http.StatusOK, info("no resource matched; nothing was deleted"))
		return nil
	case 1:
		return a.remove(c, typ, ids[0], 0)
	default:
		return errorf(http.StatusPreconditionFailed, "multiple-matches", "the condition matches more than one resource")
	}
}

// commit writes ops with the call's audit event in the same transaction,
// deciding each op with the patient compartment records computed; it
// re-plans after a concurrent change when no If-Match pins the version.
func (a *API) commit(c *call, ops []records.Op, act policy.Action) ([]records.Result, error) {
	for try := 0; ; try++ {
		rs, err := a.Records.Commit(c.ctx, ops, func(rs []records.Result) ([]byte, error) {
			c.ev.Entities, c.ev.Patients = nil, nil
			for _, r := range rs {
				if err := a.decideEntry(c, act, r.Entry); err != nil {
					return nil, err
				}
				c.ev.Entities = append(c.ev.Entities, versionRef(r.Entry))
				c.ev.Patients = appendPatient(c.ev.Patients, r.Patient)
			}
			return c.ev.Leaf(), nil
		})
		switch {
		case errors.Is(err, records.ErrPrecondition):
			return nil, errorf(http.StatusPreconditionFailed, "conflict", "the resource has changed: its version does not match If-Match")
		case errors.Is(err, records.ErrConflict) && ops[0].IfMatch != 0:
			// The version If-Match names was current when planned, but a
			// concurrent write (on this node or another) made a newer one
			// first: the precondition is false.
			return nil, errorf(http.StatusPreconditionFailed, "conflict", "the resource has changed: its version does not match If-Match")
		case errors.Is(err, records.ErrConflict) && try < maxRetries && ops[0].IfMatch == 0 && !ops[0].MustCreate && ops[0].Unless == nil:
			continue
		case errors.Is(err, records.ErrConflict):
			return nil, errorf(http.StatusConflict, "conflict", "a concurrent change won; retry the request")
		}
		return rs, err
	}
}

func (a *API) writeResult(c *call, status int, e records.Entry, created bool) {
	setVersionHeaders(c.w, e)
	if created {
		c.w.Header().Set("Location", a.Base+"/"+e.Type+"/"+e.ID+"/_history/"+fmt.Sprint(e.VID))
	}
	switch c.prefer() {
	case "minimal":
		c.w.WriteHeader(status)
	case "OperationOutcome":
		writeJSON(c.w, status, info("ok"))
	default:
		writeBody(c.w, status, e.Body)
	}
}

func setVersionHeaders(w http.ResponseWriter, e records.Entry) {
	w.Header().Set("ETag", etag(e.VID))
	w.Header().Set("Last-Modified", e.Updated.UTC().Format(http.TimeFormat))
}

func versionRef(e records.Entry) string {
	return fmt.Sprintf("%s/%s/_history/%d", e.Type, e.ID, e.VID)
}

func patients(p string) []string {
	if p == "" {
		return nil
	}
	return []string{p}
}

func appendPatient(ps []string, p string) []string {
	if p == "" {
		return ps
	}
	for _, x := range ps {
		if x == p {
			return ps
		}
	}
	return append(ps, p)
}

// missing maps records' not-found and deleted errors to 404 and 410;
// other errors pass through (wrap maps erased data to 410 for every path).
func missing(typ, id string, err error) error {
	switch {
	case errors.Is(err, records.ErrNotFound):
		return errorf(http.StatusNotFound, "not-found", fmt.Sprintf("%s/%s is not known", typ, id))
	case errors.Is(err, records.ErrDeleted):
		return errorf(http.StatusGone, "deleted", fmt.Sprintf("%s/%s was deleted", typ, id))
	}
	return err
}

// newID returns a time-ordered (version 7) UUID as a resource id: 48 bits
// of Unix milliseconds, then 74 random bits. Ids made one after another
// sort in creation order, so a create appends to the store's id-keyed
// B-trees and to the end of each index token's postings instead of
// writing a random page of each. The time it carries is the one
// meta.lastUpdated already shows for the first version (docs/ciphertext.md).
func newID() string {
	return uuid.Must(uuid.NewV7()).String()
}
