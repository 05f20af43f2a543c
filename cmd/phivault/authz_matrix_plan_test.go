package main

// How each row of the authorization matrix is driven over HTTPS: the
// caller, the credential, the request and the target (authz_matrix_test.go
// states what the columns mean).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// mxCell is how one row is driven over HTTPS.
type mxCell struct {
	row     mxRow
	who     string // account id, "operator" or "device"
	session bool   // through a console session (break-the-glass rows)
	method  string
	path    string // under the FHIR base, e.g. "/Observation/obs-pt-ct-none"
	root    bool   // path is under the server's root instead (the admin API)
	body    []byte
	find    string         // search: the id the bundle must hold for "allow"
	setup   map[string]any // stored by the operator just before (a delete's target)
	last    bool           // run after everything else (it may remove shared data)
	export  bool           // a bulk export kick-off, driven by execExport
	// noCred: the credential is not accepted on this path at all, so a
	// 401 is this cell's denial (the device's certificate on the admin API).
	noCred bool
	notes  []string // how the row was mapped, when not literally
}

// Phases of the run.
const (
	mxBearer  = iota // tokens, device certificate, operator
	mxActive         // console sessions with an open break-the-glass window
	mxExpired        // the same sessions after the window expired
	mxLast           // deletes of the shared Patient resources
)

func (c mxCell) phase() int {
	switch {
	case c.last:
		return mxLast
	case c.session && c.row.bg == "active":
		return mxActive
	case c.session:
		return mxExpired
	}
	return mxBearer
}

// mxPlan maps a row to its HTTP interaction, or gives why it cannot be
// driven (skip), or fails for a value it does not know.
func (e *mxEnv) mxPlan(r mxRow, exportRoute bool) (c mxCell, skip string, err error) {
	c.row = r
	ck, ok := mxConsents[r.consent]
	if !ok {
		return c, "", fmt.Errorf("unknown consent %q", r.consent)
	}
	switch r.role {
	case "operator", "device":
		c.who = r.role
	case "vendor":
		c.who = "u-vendor"
		c.notes = append(c.notes, "vendor: a bearer token for the vendor account (no scopes), standing for a SMART token without scopes")
	case "patient":
		c.who = "u-patient-none"
		if r.rel == "self" {
			c.who = "u-patient-" + ck
		}
	default:
		if !slices.Contains(mxWorkforce, r.role) {
			return c, "", fmt.Errorf("unknown role %q", r.role)
		}
		c.who = "u-" + r.role
	}
	var pt string
	switch r.rel {
	case "careteam":
		pt = "pt-ct-" + ck
	case "self":
		pt = "pt-self-" + ck
	case "none":
		pt = "pt-no-" + ck
	default:
		return c, "", fmt.Errorf("unknown relationship %q", r.rel)
	}
	reading := r.action == "read" || r.action == "search"
	switch r.bg {
	case "no":
	case "active", "expired":
		switch {
		case c.who == "operator" || c.who == "device" || c.who == "u-vendor":
			c.notes = append(c.notes, "break-the-glass opens on a console session; the "+r.role+" has none, so the row runs with its usual credential")
		case reading:
			c.session = true
		default:
			c.notes = append(c.notes, "break-the-glass open on the console session, the write sent with a bearer token (sessions only GET)")
		}
	default:
		return c, "", fmt.Errorf("unknown break_glass %q", r.bg)
	}
	var typ, id string
	switch r.kind {
	case "patient-clinical":
		typ, id = "Observation", "obs-"+pt
	case "patient-demographics":
		typ, id = "Patient", pt
	case "financial":
		typ, id = "Claim", "claim-"+pt
	case "reference":
		typ, id = "Practitioner", "pr-ref"
	case "audit-log", "monitoring-case", "audit-search", "disclosures", "configuration":
	default:
		return c, "", fmt.Errorf("unknown kind %q", r.kind)
	}
	switch r.action {
	case "admin":
		// The user administration API (internal/adminapi) decides every
		// call with the admin action; its list of users stands for all.
		c.method, c.path, c.root = http.MethodGet, "/admin/v1/users", true
		if c.who == "device" {
			// Its credential is its client certificate, accepted only under
			// /device/fhir/: presented to the admin API it gets 401.
			c.noCred, c.notes = true, append(c.notes, "device certificate on the admin API: 401 is the denial")
		}
		if r.bg == "active" && c.who != "operator" && c.who != "u-vendor" && c.who != "device" {
			// Sent with the console session on which the window is open.
			c.session, c.notes = true, nil
		}
	case "export":
		if !exportRoute {
			return c, "the server has no export interaction yet (GET /fhir/$export and /fhir/Patient/$export are not routes)", nil
		}
		if typ == "" {
			return c, "", fmt.Errorf("no export target for kind %s", r.kind)
		}
		// A system-level bulk export of the target's type: allow means the
		// target is in the files (see execExport). Bulk export is for bearer
		// tokens: rows with a break-the-glass window run with the token.
		c.method, c.path, c.find, c.export = http.MethodGet, "/$export?_type="+typ, id, true
		if r.bg != "no" && c.who != "operator" && c.who != "device" && c.who != "u-vendor" {
			c.notes = []string{"export with break-the-glass: sent with the bearer token (bulk export is not a console interaction)"}
		}
	case "audit-read":
		c.method, c.path = http.MethodGet, "/_audit/leaf?index=0"
		if r.kind == "monitoring-case" {
			c.method, c.path = http.MethodGet, "/_cases"
		}
		if r.role == "patient" && r.rel == "self" {
			c.path = "/Patient/" + pt + "/$access-report"
		}
		switch r.kind {
		case "audit-search": // never a patient's own: only the log's readers search it
			c.path = "/AuditEvent?patient=" + pt
		case "disclosures":
			c.path = "/Patient/" + pt + "/$disclosures"
		}
	case "read":
		c.method, c.path = http.MethodGet, "/"+typ+"/"+id
	case "search":
		c.method, c.path, c.find = http.MethodGet, "/"+typ+"?_id="+id, id
	case "create":
		c.method, c.path = http.MethodPost, "/"+typ
		var res map[string]any
		switch r.kind {
		case "patient-clinical":
			res = mxObservation("", pt)
		case "financial":
			res = mxClaim("", pt)
		case "reference":
			res = mxPractitioner("new")
		case "patient-demographics":
			res = mxPatient("new")
			if r.rel != "none" {
				// A new Patient has no care team or owner yet: the
				// relationship is exercised with a demographic record
				// of the existing patient (scheduling, front-desk work).
				c.path = "/Appointment"
				res = mxJSON(`{"resourceType":"Appointment","status":"proposed","participant":[{"actor":{"reference":"Patient/` + pt + `"},"status":"needs-action"}]}`)
				c.notes = append(c.notes, "create patient-demographics with a relationship: POST Appointment for the existing patient (a new Patient has no relationship)")
			}
		}
		c.body, _ = json.Marshal(res)
	case "update":
		c.method, c.path, c.body = http.MethodPut, "/"+typ+"/"+id, e.bodies[typ+"/"+id]
	case "delete":
		c.method = http.MethodDelete
		del := fmt.Sprintf("del-%d", r.line)
		switch {
		case r.kind == "patient-clinical":
			c.setup = mxObservation(del, pt)
		case r.kind == "financial":
			c.setup = mxClaim(del, pt)
		case r.kind == "reference":
			c.setup = mxPractitioner(del)
		case r.role == "operator": // the operator's decisions read no facts
			c.setup = mxPatient(del)
		default:
			c.path, c.last = "/Patient/"+pt, true
		}
		if c.setup != nil {
			c.path = "/" + typ + "/" + del
		}
	default:
		return c, "", fmt.Errorf("unknown action %q", r.action)
	}
	if c.method == "" || c.path == "" {
		return c, "", fmt.Errorf("no interaction for action %s on kind %s", r.action, r.kind)
	}
	return c, "", nil
}

// execExport drives an export cell: the kick-off (Prefer: respond-async)
// with the row's credential; 403 is a deny. Otherwise it polls the status
// URL, downloads every output file, allows when the target is in them, and
// cancels the job (removing its files).
func (e *mxEnv) execExport(c mxCell) mxResult {
	res := mxResult{c: c}
	client, base, bearer := e.client, e.origin+"/fhir", e.tokens[c.who]
	switch c.who {
	case "operator":
		bearer = e.operator
	case "device":
		client, base, bearer = e.device, e.origin+"/device/fhir", ""
	}
	get := func(method, u string) (*http.Response, []byte, error) {
		req, err := http.NewRequest(method, u, nil)
		if err != nil {
			return nil, nil, err
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		req.Header.Set("Accept", "application/fhir+json")
		req.Header.Set("Prefer", "respond-async")
		req.Header.Set("X-Purpose-Of-Use", c.row.purpose)
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	resp, body, err := get(http.MethodGet, base+c.path)
	if err != nil {
		res.err = err
		return res
	}
	if res.status = resp.StatusCode; res.status == http.StatusForbidden {
		return res
	}
	status := resp.Header.Get("Content-Location")
	if res.status != http.StatusAccepted || status == "" {
		res.err = fmt.Errorf("kick-off: status %d (want 202 or 403): %.200s", res.status, body)
		return res
	}
	defer get(http.MethodDelete, status)
	var m struct{ Output []struct{ URL string } }
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		resp, body, err = get(http.MethodGet, status)
		switch {
		case err != nil:
			res.err = err
			return res
		case resp.StatusCode == http.StatusAccepted && time.Now().Before(deadline):
			continue
		case resp.StatusCode != http.StatusOK:
			res.err = fmt.Errorf("export status: %d: %.200s", resp.StatusCode, body)
			return res
		}
		if err := json.Unmarshal(body, &m); err != nil {
			res.err = fmt.Errorf("export manifest: %v", err)
			return res
		}
		break
	}
	for _, f := range m.Output {
		resp, body, err = get(http.MethodGet, f.URL)
		if err != nil || resp.StatusCode != http.StatusOK {
			res.err = fmt.Errorf("export file: %v %.200s", err, body)
			return res
		}
		for _, line := range bytes.Split(body, []byte("\n")) {
			var r struct{ ID string }
			if len(line) > 0 && json.Unmarshal(line, &r) == nil && r.ID == c.find {
				res.allowed = true
			}
		}
	}
	return res
}
