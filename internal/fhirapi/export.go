package fhirapi

// FHIR Bulk Data Access 2.0 ($export): kick-off, status, files, cancel.
//
// Every exported resource passes the export decision (policy.Export) for
// the principal that started the job; what it may not export is left out
// and only counted. Output is sealed under a per-job data key and kept in
// the store's metadata (never plaintext on disk); the key is destroyed
// when the job expires or is cancelled. Only the principal that started a
// job (same user id and session or token family) sees it; anyone else
// gets 404. Step-up re-authentication is not asked for: bulk export is
// meant for bearer tokens (backend services), which have no interactive
// session to step up.
//
// The status and file endpoints take the job in the query
// ($export-poll-status?_jobId=..., as HAPI FHIR does) because a path
// parameter after a literal segment would overlap the {type}/_history
// routes of the same mux.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
)

// Export levels.
const (
	levelSystem  = "system"
	levelPatient = "patient"
	levelGroup   = "group"
)

// exportParams is a validated kick-off request.
type exportParams struct {
	Types []string  // resource types to export; empty: all
	Since time.Time // only resources updated at or after; zero: all
}

// parseExportParams validates the kick-off query and the Prefer header.
// Unknown parameters are refused (400) unless Prefer asks for
// handling=lenient. Errors are *Error values with a 400 status.
func parseExportParams(q url.Values, prefer []string) (exportParams, error) {
	var p exportParams
	async, lenient := false, false
	for _, h := range prefer {
		for _, part := range strings.Split(h, ",") {
			switch strings.TrimSpace(part) {
			case "respond-async":
				async = true
			case "handling=lenient":
				lenient = true
			}
		}
	}
	if !async {
		return p, errorf(http.StatusBadRequest, "required", "bulk export is asynchronous: send the header Prefer: respond-async")
	}
	for k, vs := range q {
		switch k {
		case "_outputFormat":
			for _, v := range vs {
				switch v {
				case "application/fhir+ndjson", "application/ndjson", "ndjson":
				default:
					return p, errorf(http.StatusBadRequest, "not-supported", "_outputFormat must be application/fhir+ndjson")
				}
			}
		case "_type":
			for _, v := range vs {
				for _, t := range strings.Split(v, ",") {
					t = strings.TrimSpace(t)
					if !fhir.IsResourceType(t) {
						return p, errorf(http.StatusBadRequest, "not-supported", "_type names an unknown resource type")
					}
					if !slices.Contains(p.Types, t) {
						p.Types = append(p.Types, t)
					}
				}
			}
		case "_since":
			if len(vs) != 1 {
				return p, errorf(http.StatusBadRequest, "value", "_since may be given once")
			}
			t, err := time.Parse(time.RFC3339Nano, vs[0])
			if err != nil {
				return p, errorf(http.StatusBadRequest, "value", "_since must be a FHIR instant, e.g. 2024-01-02T03:04:05Z")
			}
			p.Since = t
		default:
			if !lenient {
				return p, errorf(http.StatusBadRequest, "not-supported", "unsupported export parameter "+strconv.Quote(k))
			}
		}
	}
	slices.Sort(p.Types)
	return p, nil
}

func (a *API) exportRoutes(h func(string, func(*call) error)) {
	h("GET /fhir/$export", a.exportSystem)
	h("GET /fhir/Patient/$export", a.exportPatient)
	h("GET /fhir/Group/{id}/$export", a.exportGroup)
	h("GET /fhir/$export-poll-status", a.exportStatus)
	h("DELETE /fhir/$export-poll-status", a.exportCancel)
	h("GET /fhir/$export-file", a.exportFile)
}

func (a *API) exportSystem(c *call) error  { return a.exportKickoff(c, levelSystem, "", nil) }
func (a *API) exportPatient(c *call) error { return a.exportKickoff(c, levelPatient, "Patient", nil) }

// exportGroup exports the compartments of a Group's member patients. The
// caller must be allowed to read the Group (its member list).
func (a *API) exportGroup(c *call) error {
	c.ev.Interaction, c.ev.Action = "export", "E"
	id := c.r.PathValue("id")
	if !fhir.IsID(id) {
		return errorf(http.StatusBadRequest, "value", "invalid Group id")
	}
	if a.Export.Barrier == nil {
		return errExportOff
	}
	g, err := a.Records.Read(c.ctx, "Group", id)
	if err != nil {
		return errorf(http.StatusNotFound, "not-found", "no such Group")
	}
	if err := a.decideEntry(c, policy.Read, g); err != nil {
		return err
	}
	var body struct {
		Member []struct {
			Entity struct{ Reference string } `json:"entity"`
		} `json:"member"`
	}
	if err := json.Unmarshal(g.Body, &body); err != nil {
		return err
	}
	members := map[string]bool{}
	for _, m := range body.Member {
		if pid, ok := strings.CutPrefix(m.Entity.Reference, "Patient/"); ok && fhir.IsID(pid) {
			members[pid] = true
		}
	}
	c.ev.Entities = append(c.ev.Entities, versionRef(g))
	return a.exportKickoff(c, levelGroup, "Group", members)
}

var errExportOff = errorf(http.StatusNotFound, "not-supported", "bulk export is not enabled on this server")

// exportKickoff validates, decides the export as a whole (type-level
// Export for the caller), records the kick-off event and starts the job.
func (a *API) exportKickoff(c *call, level, typ string, members map[string]bool) error {
	c.ev.Interaction, c.ev.Action = "export", "E"
	if a.Export.Barrier == nil {
		return errExportOff
	}
	p, err := parseExportParams(c.r.URL.Query(), c.r.Header.Values("Prefer"))
	if err != nil {
		return err
	}
	if err := a.decide(c, policy.Export, typ, "", ""); err != nil {
		return err
	}
	j, err := a.exports.reserve(c.who, c.purpose(), a.Base+strings.TrimPrefix(c.r.URL.RequestURI(), "/fhir"), level, typ, p, members)
	if err != nil {
		return err
	}
	if err := a.record(c); err != nil {
		a.exports.release(j)
		return err
	}
	a.exports.start(a, j)
	c.w.Header().Set("Content-Location", a.exportStatusURL(j.id))
	writeJSON(c.w, http.StatusAccepted, info("export started"))
	return nil
}

func (a *API) exportStatusURL(job string) string {
	return a.Base + "/$export-poll-status?_jobId=" + url.QueryEscape(job)
}

// job returns the caller's job named by _jobId; a job of anyone else is
// not found.
func (a *API) job(c *call) (*exportJob, error) {
	if a.Export.Barrier == nil {
		return nil, errExportOff
	}
	j := a.exports.get(c.r.URL.Query().Get("_jobId"), c.who)
	if j == nil {
		return nil, errorf(http.StatusNotFound, "not-found", "no such export job")
	}
	return j, nil
}

// exportStatus answers 202 with X-Progress while the job runs, the
// manifest when it is done, and the job's failure as an OperationOutcome.
func (a *API) exportStatus(c *call) error {
	c.ev.Interaction, c.ev.Action = "export-status", "R"
	j, err := a.job(c)
	if err != nil {
		return err
	}
	st := j.snapshot()
	if err := a.record(c); err != nil {
		return err
	}
	switch {
	case st.failed != "":
		writeJSON(c.w, http.StatusInternalServerError, errorf(http.StatusInternalServerError, "exception", st.failed).Outcome())
	case !st.done:
		c.w.Header().Set("X-Progress", st.progress)
		c.w.Header().Set("Retry-After", "1")
		c.w.WriteHeader(http.StatusAccepted)
	default:
		out, errs := []any{}, []any{}
		for i, f := range st.files {
			e := map[string]any{"type": f.typ, "url": a.Base + "/$export-file?_jobId=" + url.QueryEscape(j.id) + "&file=" + strconv.Itoa(i), "count": f.count}
			if f.typ == "OperationOutcome" {
				errs = append(errs, e)
			} else {
				out = append(out, e)
			}
		}
		c.w.Header().Set("Expires", st.expires.UTC().Format(http.TimeFormat))
		writeJSON(c.w, http.StatusOK, map[string]any{
			"transactionTime": j.started.UTC().Format(time.RFC3339Nano), "request": j.request,
			"requiresAccessToken": true, "output": out, "error": errs,
		})
	}
	return nil
}

// exportCancel stops a job and removes its output.
func (a *API) exportCancel(c *call) error {
	c.ev.Interaction, c.ev.Action = "export-cancel", "E"
	j, err := a.job(c)
	if err != nil {
		return err
	}
	if err := a.record(c); err != nil {
		return err
	}
	a.exports.remove(c.ctx, a, j)
	writeJSON(c.w, http.StatusAccepted, info("export cancelled and its files removed"))
	return nil
}

// exportFile serves one output file as NDJSON. Its event names every
// patient and resource in it and is recorded before any byte is sent.
func (a *API) exportFile(c *call) error {
	c.ev.Interaction, c.ev.Action = "export", "R"
	j, err := a.job(c)
	if err != nil {
		return err
	}
	st := j.snapshot()
	n, err := strconv.Atoi(c.r.URL.Query().Get("file"))
	if err != nil || !st.done || n < 0 || n >= len(st.files) {
		return errorf(http.StatusNotFound, "not-found", "no such export file")
	}
	f := st.files[n]
	// The caller may have lost the right to export since the kick-off
	// (a role or grant revoked): the export decision is asked again.
	if err := a.decide(c, policy.Export, j.gate, "", ""); err != nil {
		return err
	}
	body, err := a.exports.open(c.ctx, a, j, n)
	if err != nil {
		return err
	}
	c.ev.Patients = append(c.ev.Patients, f.patients...)
	c.ev.Entities = append(c.ev.Entities, f.entities...)
	if err := a.record(c); err != nil {
		return err
	}
	h := c.w.Header()
	h.Set("Content-Type", "application/fhir+ndjson")
	h.Set("Cache-Control", "no-store")
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(body)
	return nil
}

// exportRequest is the export decision for e on behalf of the job's owner.
func exportRequest(j *exportJob, e records.Entry) policy.Request {
	r := policy.Request{Principal: j.owner, Action: policy.Export, Type: e.Type, ID: e.ID, Patient: e.Patient, Purpose: j.purpose}
	r.Labels, r.Category = labels(e.Body)
	return r
}
