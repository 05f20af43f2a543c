package fhirapi

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/store"
)

// auditSearchRoutes serves the audit log as the FHIR AuditEvent type,
// read-only: each event is the leaf of the log at index N, with id N.
// Writes are refused (405): events are appended only by the server.
//
//	GET  /fhir/AuditEvent?...           search (BALP parameters, below)
//	POST /fhir/AuditEvent/_search       the same, form-encoded
//	GET  /fhir/AuditEvent/{id}          the event at leaf index id (through read, crud.go)
//	GET  /fhir/AuditEvent/_history      400: events have no history
func (a *API) auditSearchRoutes(h func(string, func(*call) error)) {
	h("GET /fhir/AuditEvent", a.auditSearch)
	h("POST /fhir/AuditEvent/_search", a.auditSearch)
	h("GET /fhir/AuditEvent/_history", a.auditEventHistory)
	h("POST /fhir/AuditEvent", a.auditEventWrite)
	h("PUT /fhir/AuditEvent", a.auditEventWrite)
	h("DELETE /fhir/AuditEvent", a.auditEventWrite)
	h("PUT /fhir/AuditEvent/{id}", a.auditEventWrite)
	h("PATCH /fhir/AuditEvent/{id}", a.auditEventWrite)
	h("DELETE /fhir/AuditEvent/{id}", a.auditEventWrite)
}

// auditEventWrite refuses every change to the audit log.
func (a *API) auditEventWrite(c *call) error {
	c.ev.Interaction = map[string]string{"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[c.r.Method]
	c.ev.Action = map[string]string{"POST": "C", "PUT": "U", "PATCH": "U", "DELETE": "D"}[c.r.Method]
	c.w.Header().Set("Allow", "GET")
	return errNoAuditWrite
}

// auditEventHistory refuses history: an event never changes.
func (a *API) auditEventHistory(c *call) error {
	c.ev.Interaction, c.ev.Action = "history-type", "R"
	return errNoAuditHistory
}

var errNoAuditHistory = errorf(http.StatusBadRequest, "not-supported", "AuditEvent has no history: each event is one unchangeable entry of the audit log")

var errNoAuditWrite = errorf(http.StatusMethodNotAllowed, "not-supported", "AuditEvent is read-only: events are appended by the server's audit log only")

// auditQuery is a parsed AuditEvent search.
type auditQuery struct {
	leaf     audit.LeafQuery
	actions  []string // any of; nil: any
	outcomes []string
	subtypes []string
	entities [][]string // each occurrence: any of these references
	ignored  []string
}

// auditParams are the search parameters AuditEvent search accepts.
var auditParams = []string{"patient", "agent", "date", "action", "outcome", "subtype", "entity", "_count", "_start", "_format", "_pretty"}

// parseAuditQuery reads the BALP search parameters. Unknown parameters are
// a 400 unless lenient (Prefer: handling=lenient), then ignored and named.
func parseAuditQuery(q url.Values, lenient bool) (auditQuery, error) {
	var aq auditQuery
	for k, vs := range q {
		name, mod, _ := strings.Cut(k, ":") // no modifiers are supported
		if !slices.Contains(auditParams, name) || mod != "" {
			if !lenient {
				return aq, errorf(http.StatusBadRequest, "not-supported", "unknown or unsupported AuditEvent search parameter "+strconv.Quote(k)+"; supported: "+strings.Join(auditParams, ", "))
			}
			aq.ignored = append(aq.ignored, k)
			continue
		}
		for _, v := range vs {
			if err := aq.add(name, v); err != nil {
				return aq, err
			}
		}
	}
	slices.Sort(aq.ignored)
	return aq, nil
}

func (aq *auditQuery) add(name, v string) error {
	bad := func(msg string) error { return errorf(http.StatusBadRequest, "value", name+": "+msg) }
	single := func(dst *string, v string) error {
		if *dst != "" && *dst != v {
			return bad("only one value is supported")
		}
		*dst = v
		return nil
	}
	switch name {
	case "patient":
		id := strings.TrimPrefix(v, "Patient/")
		if !fhir.IsID(id) {
			return bad("a Patient id or Patient/id reference")
		}
		return single(&aq.leaf.Patient, id)
	case "agent":
		if v == "" || len(v) > 256 || strings.Contains(v, ",") {
			return bad("one user id")
		}
		return single(&aq.leaf.Agent, v)
	case "date":
		return aq.date(v)
	case "action":
		return tokens(&aq.actions, v, bad, "C", "R", "U", "D", "E")
	case "outcome":
		return tokens(&aq.outcomes, v, bad, audit.Success, audit.MinorFailure, audit.SeriousFail, "12")
	case "subtype":
		var codes []string
		for _, t := range strings.Split(v, ",") {
			if sys, code, ok := strings.Cut(t, "|"); ok {
				if sys != "" && sys != "http://hl7.org/fhir/restful-interaction" {
					return bad("unknown system " + strconv.Quote(sys))
				}
				t = code
			}
			if t == "" {
				return bad("empty code")
			}
			codes = append(codes, t)
		}
		aq.subtypes = intersectOr(aq.subtypes, codes)
	case "entity":
		var refs []string
		for _, r := range strings.Split(v, ",") {
			typ, id, ok := strings.Cut(r, "/")
			if !ok || typ == "" || !fhir.IsID(strings.SplitN(id, "/", 2)[0]) {
				return bad("a reference such as Observation/123")
			}
			refs = append(refs, r)
		}
		aq.entities = append(aq.entities, refs)
	case "_count", "_format", "_pretty": // read elsewhere or not applicable
	case "_start":
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			return bad("a leaf index")
		}
		aq.leaf.Start = max(aq.leaf.Start, n)
	}
	return nil
}

// tokens adds a token parameter's values (comma: any of) to dst; a second
// occurrence of the parameter narrows (all of).
func tokens(dst *[]string, v string, bad func(string) error, allowed ...string) error {
	vs := strings.Split(v, ",")
	for _, t := range vs {
		if !slices.Contains(allowed, t) {
			return bad(strconv.Quote(t) + " is not one of " + strings.Join(allowed, ", "))
		}
	}
	*dst = intersectOr(*dst, vs)
	return nil
}

// intersectOr returns b when a is nil, else the values in both (an empty,
// non-nil slice matches nothing).
func intersectOr(a, b []string) []string {
	if a == nil {
		return b
	}
	out := []string{}
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// date adds a date parameter: a prefix (eq, ge, gt, le, lt; none is eq)
// and a FHIR date or dateTime; the value stands for the whole period of
// its precision (2026-03 is March).
func (aq *auditQuery) date(v string) error {
	prefix := "eq"
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		prefix, v = v[:2], v[2:]
	}
	start, end, ok := fhirPeriod(v)
	if !ok {
		return errorf(http.StatusBadRequest, "value", "date: "+strconv.Quote(v)+" is not a FHIR date or dateTime")
	}
	from, to := time.Time{}, time.Time{}
	switch prefix {
	case "eq":
		from, to = start, end
	case "ge":
		from = start
	case "gt":
		from = end
	case "le":
		to = end
	case "lt":
		to = start
	default:
		return errorf(http.StatusBadRequest, "value", "date: prefix "+strconv.Quote(prefix)+" is not supported (eq, ge, gt, le, lt)")
	}
	if !from.IsZero() && (aq.leaf.From.IsZero() || from.After(aq.leaf.From)) {
		aq.leaf.From = from
	}
	if !to.IsZero() && (aq.leaf.To.IsZero() || to.Before(aq.leaf.To)) {
		aq.leaf.To = to
	}
	return nil
}

// fhirPeriod returns the period [start, end) a FHIR date or dateTime
// stands for. A dateTime without a zone is taken as UTC.
func fhirPeriod(v string) (start, end time.Time, ok bool) {
	if strings.Contains(v, ".") { // fractional seconds: an instant
		t, err := time.Parse(time.RFC3339Nano, v)
		return t.UTC(), t.Add(time.Nanosecond).UTC(), err == nil
	}
	for _, f := range []struct {
		layout string
		step   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{"2006-01-02T15:04Z07:00", func(t time.Time) time.Time { return t.Add(time.Minute) }},
		{"2006-01-02T15:04", func(t time.Time) time.Time { return t.Add(time.Minute) }},
		{"2006-01-02T15:04:05Z07:00", func(t time.Time) time.Time { return t.Add(time.Second) }},
		{"2006-01-02T15:04:05", func(t time.Time) time.Time { return t.Add(time.Second) }},
	} {
		if t, err := time.Parse(f.layout, v); err == nil {
			return t.UTC(), f.step(t).UTC(), true
		}
	}
	return time.Time{}, time.Time{}, false
}

// leafFields are the parts of an AuditEvent leaf the search filters on.
type leafFields struct {
	Action  string `json:"action"`
	Outcome string `json:"outcome"`
	Subtype []struct {
		Code string `json:"code"`
	} `json:"subtype"`
	Entity []struct {
		What struct {
			Reference string `json:"reference"`
		} `json:"what"`
	} `json:"entity"`
}

// keep reports whether a leaf passes the filters the index does not apply.
func (aq *auditQuery) keep(_ uint64, leaf []byte) bool {
	if aq.actions == nil && aq.outcomes == nil && aq.subtypes == nil && aq.entities == nil {
		return true
	}
	var f leafFields
	if json.Unmarshal(leaf, &f) != nil {
		return false
	}
	if aq.actions != nil && !slices.Contains(aq.actions, f.Action) || aq.outcomes != nil && !slices.Contains(aq.outcomes, f.Outcome) {
		return false
	}
	if aq.subtypes != nil && !slices.ContainsFunc(f.Subtype, func(s struct {
		Code string `json:"code"`
	}) bool {
		return slices.Contains(aq.subtypes, s.Code)
	}) {
		return false
	}
	for _, refs := range aq.entities {
		found := false
		for _, e := range f.Entity {
			for _, r := range refs {
				found = found || e.What.Reference == r || strings.HasPrefix(e.What.Reference, r+"/_history/")
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// auditSearch serves GET /fhir/AuditEvent and POST /fhir/AuditEvent/_search:
// a searchset Bundle of the matching events in log order, _count per page,
// the next page's link continuing from a leaf index (_start). Only the
// audit log's readers may search it (action audit-read; a patient's own
// record is read through $access-report), and the search is audited.
func (a *API) auditSearch(c *call) error {
	c.ev.Interaction, c.ev.Action = "search-type", "E"
	q := c.r.URL.Query()
	if c.r.Method == http.MethodPost {
		b, err := c.body("application/x-www-form-urlencoded")
		if err != nil {
			return err
		}
		form, err := url.ParseQuery(string(b))
		if err != nil {
			return errorf(http.StatusBadRequest, "structure", "the form body is not valid")
		}
		for k, vs := range form {
			q[k] = append(q[k], vs...)
		}
	}
	c.ev.Query = hex.EncodeToString(a.Records.Token("audit-query", "AuditEvent", q.Encode()))
	lenient := false
	for _, p := range c.r.Header.Values("Prefer") {
		lenient = lenient || strings.Contains(p, "handling=lenient")
	}
	aq, err := parseAuditQuery(q, lenient)
	if err != nil {
		return err
	}
	count, err := countParam(q)
	if err != nil {
		return err
	}
	if err := a.decide(c, actAuditRead, "AuditEvent", "", ""); err != nil {
		return err
	}
	if aq.leaf.Patient != "" {
		c.ev.Patients = []string{aq.leaf.Patient}
	}
	var res audit.LeafResult
	if count > 0 {
		aq.leaf.Limit = count
		ctx, cancel := context.WithTimeout(c.ctx, reportTimeout)
		defer cancel()
		if res, err = a.Audit.Prover().FindLeaves(ctx, aq.leaf, aq.keep); err != nil {
			return err
		}
	}
	entries := make([]any, 0, len(res.Matches)+1)
	for _, m := range res.Matches {
		id := strconv.FormatUint(m.Index, 10)
		c.ev.Entities = append(c.ev.Entities, "AuditEvent/"+id)
		entries = append(entries, map[string]any{"fullUrl": a.Base + "/AuditEvent/" + id, "resource": rawJSON(withID(m.Leaf, id)), "search": map[string]any{"mode": "match"}})
	}
	if len(aq.ignored) > 0 {
		entries = append(entries, map[string]any{
			"resource": map[string]any{"resourceType": "OperationOutcome", "issue": []any{map[string]any{
				"severity": "warning", "code": "not-supported",
				"diagnostics": "ignored unknown or unsupported search parameters: " + strings.Join(aq.ignored, ", "),
			}}},
			"search": map[string]any{"mode": "outcome"},
		})
	}
	if err := a.record(c); err != nil {
		return err
	}
	self := url.Values{}
	for k, vs := range q {
		if !slices.Contains(aq.ignored, k) {
			self[k] = vs
		}
	}
	links := []any{map[string]any{"relation": "self", "url": a.Base + "/AuditEvent?" + self.Encode()}}
	if res.More {
		self.Set("_start", strconv.FormatUint(res.Next, 10))
		self.Set("_count", strconv.Itoa(count))
		links = append(links, map[string]any{"relation": "next", "url": a.Base + "/AuditEvent?" + self.Encode()})
	}
	b := map[string]any{"resourceType": "Bundle", "type": "searchset", "link": links}
	if len(entries) > 0 {
		b["entry"] = entries
	}
	c.w.Header().Set("Cache-Control", "no-store")
	writeJSON(c.w, http.StatusOK, b)
	return nil
}

// auditEventRead serves GET /fhir/AuditEvent/{id}: the event at leaf
// index id, as stored, with its id.
func (a *API) auditEventRead(c *call) error {
	c.ev.Interaction, c.ev.Action = "read", "R"
	id := c.r.PathValue("id")
	idx, err := strconv.ParseUint(id, 10, 63)
	if err != nil || strconv.FormatUint(idx, 10) != id {
		return errorf(http.StatusNotFound, "not-found", "no such AuditEvent: AuditEvent ids are leaf indexes of the audit log")
	}
	if err := a.decide(c, actAuditRead, "AuditEvent", id, ""); err != nil {
		return err
	}
	leaf, err := a.Audit.Prover().Leaf(c.ctx, idx)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "not-found", "no such AuditEvent")
	}
	if err != nil {
		return err
	}
	c.ev.Entities = []string{"AuditEvent/" + id}
	if err := a.record(c); err != nil {
		return err
	}
	c.w.Header().Set("Cache-Control", "no-store")
	writeBody(c.w, http.StatusOK, withID(leaf, id))
	return nil
}

// withID returns the leaf (a JSON object) with "id" set to id; the rest
// is the leaf byte for byte (fetch /fhir/_audit/leaf to check a proof).
func withID(leaf []byte, id string) []byte {
	if len(leaf) < 2 || leaf[0] != '{' {
		return leaf
	}
	out := make([]byte, 0, len(leaf)+len(id)+8)
	out = append(out, `{"id":"`...)
	out = append(out, id...)
	out = append(out, '"')
	if rest := strings.TrimSpace(string(leaf[1:])); rest != "}" {
		out = append(out, ',')
	}
	return append(out, leaf[1:]...)
}

// auditEventCapability is AuditEvent's entry in the CapabilityStatement:
// read and search of the audit log, with the parameters parseAuditQuery
// accepts.
func auditEventCapability() map[string]any {
	param := func(name, typ, def string) map[string]any {
		return map[string]any{"name": name, "type": typ, "definition": "http://hl7.org/fhir/SearchParameter/" + def}
	}
	return map[string]any{
		"type":        "AuditEvent",
		"interaction": []any{code("read"), code("search-type")},
		"versioning":  "no-version",
		"searchParam": []any{
			param("patient", "reference", "AuditEvent-patient"), param("agent", "reference", "AuditEvent-agent"),
			param("date", "date", "AuditEvent-date"), param("action", "token", "AuditEvent-action"),
			param("outcome", "token", "AuditEvent-outcome"), param("subtype", "token", "AuditEvent-subtype"),
			param("entity", "reference", "AuditEvent-entity"),
		},
		"documentation": "The tamper-evident audit log, read-only: AuditEvent/N is leaf N of the log. agent is the user id; results are in log order; readable by the audit log's readers only.",
	}
}

// auditOperations are the Patient operations served from the audit log.
func auditOperations() []any {
	return []any{
		map[string]any{"name": "access-report", "definition": "urn:phivault:operation:Patient-access-report",
			"documentation": "Who accessed this patient's record, when, what and why, each line with an inclusion proof (NDJSON)."},
		map[string]any{"name": "disclosures", "definition": "urn:phivault:operation:Patient-disclosures",
			"documentation": "Accounting of disclosures (45 CFR 164.528), six years; _format=text for a printable report."},
	}
}
