package fhirapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/phivault/phivault/internal/fhir"
)

// bundle serves POST /fhir with a batch or transaction Bundle.
//
// The envelope (type, entries, request elements, fullUrl uniqueness, entry
// count) is checked first; a bad envelope gives 400 with an
// OperationOutcome naming the entry (Bundle.entry[3].request.url) and
// nothing is stored. A transaction is then applied atomically (see
// transaction); a batch processes each entry on its own (see batch).
func (a *API) bundle(c *call) error {
	c.ev.Interaction, c.ev.Action = "transaction", "E"
	raw, err := c.body(jsonTypes...)
	if err != nil {
		return err
	}
	b, err := parseBundle(raw, a.MaxBundleEntries, a.Base)
	if err != nil {
		return err
	}
	if b.kind == "batch" {
		c.ev.Interaction = "batch"
		return a.batch(c, b)
	}
	return a.transaction(c, b)
}

// bundleReq is a parsed, envelope-checked batch or transaction.
type bundleReq struct {
	kind    string // "batch" or "transaction"
	entries []*bundleEntry
}

// bundleEntry is one request of a bundle. Its fields are set by
// parseBundle and never changed afterwards, so a transaction can be planned
// again from them after a concurrent change.
type bundleEntry struct {
	i           int
	fullURL     string
	method      string        // GET, HEAD, POST, PUT, PATCH, DELETE
	url         string        // request.url relative to the base
	typ, id     string        // from url; id is "" for type-level requests
	vid         string        // for GET Type/id/_history/vid
	query       url.Values    // conditional update/delete, search
	res         fhir.Resource // POST/PUT body; PATCH: a Binary holding the patch
	ifMatch     int64
	ifNoneExist url.Values
}

// loc names the entry (and an element below it) for an OperationOutcome.
func (e *bundleEntry) loc(elem string) string {
	if elem == "" {
		return fmt.Sprintf("Bundle.entry[%d]", e.i)
	}
	return fmt.Sprintf("Bundle.entry[%d].%s", e.i, elem)
}

// entryErr returns a client error located at the entry's elem.
func (e *bundleEntry) entryErr(status int, code, elem, msg string) *Error {
	loc := e.loc(elem)
	return &Error{Status: status, Code: code, Msg: loc + ": " + msg,
		Issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: code, Location: loc, Message: msg}}}
}

// wrapEntryErr moves a client error produced while handling the entry's
// resource under the entry (Patient.name -> Bundle.entry[3].resource.name);
// other errors are returned unchanged.
func (e *bundleEntry) wrapEntryErr(err error) error {
	var fe *Error
	if !errors.As(err, &fe) {
		return err
	}
	out := &Error{Status: fe.Status, Code: fe.Code, Msg: e.loc("") + ": " + fe.Msg}
	for _, is := range fe.Issues {
		is.Location = e.resourceLoc(is.Location)
		out.Issues = append(out.Issues, is)
	}
	if len(out.Issues) == 0 {
		out.Issues = []fhir.Issue{{Severity: fhir.SeverityError, Code: fe.Code, Location: e.loc(""), Message: fe.Msg}}
	}
	return out
}

func (e *bundleEntry) resourceLoc(l string) string {
	if e.res != nil {
		if rest, ok := strings.CutPrefix(l, e.res.Type()); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
			return e.loc("resource") + rest
		}
	}
	if l == "" {
		return e.loc("")
	}
	return e.loc("resource." + l)
}

var bundleMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true}

// parseBundle parses and checks a batch or transaction Bundle. Errors are
// *Error values with a 4xx status; resources inside entries are validated
// later (per entry for a batch, after reference rewriting for a
// transaction).
func parseBundle(raw []byte, maxEntries int, base string) (*bundleReq, error) {
	r, err := fhir.Parse(raw)
	if err != nil {
		var fe *fhir.Error
		if errors.As(err, &fe) {
			return nil, invalid(http.StatusBadRequest, []fhir.Issue{fe.Issue()})
		}
		return nil, errorf(http.StatusBadRequest, "structure", "the body is not a FHIR JSON resource")
	}
	if r.Type() != "Bundle" {
		return nil, errorf(http.StatusBadRequest, "invalid", "POST to the base URL takes a Bundle of type batch or transaction")
	}
	kind, _ := r["type"].(string)
	if kind != "batch" && kind != "transaction" {
		return nil, &Error{Status: http.StatusBadRequest, Code: "invalid", Msg: "Bundle.type must be batch or transaction",
			Issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: "invalid", Location: "Bundle.type", Message: "must be batch or transaction"}}}
	}
	list, ok := r["entry"].([]any)
	if _, has := r["entry"]; has && !ok {
		return nil, errorf(http.StatusBadRequest, "structure", "Bundle.entry must be an array")
	}
	if maxEntries > 0 && len(list) > maxEntries {
		return nil, errorf(http.StatusRequestEntityTooLarge, "too-costly", fmt.Sprintf("a bundle may have at most %d entries", maxEntries))
	}
	// Validate the envelope without the entries' resources, which are
	// checked per entry (a bad resource fails only its entry in a batch).
	env := fhir.Resource{}
	for k, v := range r {
		env[k] = v
	}
	envEntries := make([]any, len(list))
	for i, v := range list {
		m, ok := v.(map[string]any)
		if !ok {
			envEntries[i] = v
			continue
		}
		cp := map[string]any{}
		for k, v := range m {
			if k != "resource" {
				cp[k] = v
			}
		}
		envEntries[i] = cp
	}
	if len(list) > 0 {
		env["entry"] = envEntries
	}
	b := &bundleReq{kind: kind, entries: make([]*bundleEntry, len(list))}
	seen := map[string]int{}
	for i, v := range list {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, (&bundleEntry{i: i}).entryErr(http.StatusBadRequest, "structure", "", "an entry must be a JSON object")
		}
		e, err := parseEntry(i, m, base)
		if err != nil {
			return nil, err
		}
		if e.fullURL != "" {
			if j, dup := seen[e.fullURL]; dup {
				return nil, e.entryErr(http.StatusBadRequest, "invalid", "fullUrl", fmt.Sprintf("fullUrl is the same as that of Bundle.entry[%d]", j))
			}
			seen[e.fullURL] = i
		}
		b.entries[i] = e
	}
	if issues := fhir.Validate(env); fhir.HasErrors(issues) {
		return nil, invalid(http.StatusBadRequest, issues)
	}
	return b, nil
}

// parseEntry checks one entry's request and resource shape.
func parseEntry(i int, m map[string]any, base string) (*bundleEntry, error) {
	e := &bundleEntry{i: i}
	e.fullURL, _ = m["fullUrl"].(string)
	req, _ := m["request"].(map[string]any)
	if req == nil {
		return nil, e.entryErr(http.StatusBadRequest, "required", "request", "a batch or transaction entry needs a request")
	}
	e.method, _ = req["method"].(string)
	if !bundleMethods[e.method] {
		return nil, e.entryErr(http.StatusBadRequest, "invalid", "request.method", "must be GET, HEAD, POST, PUT, PATCH or DELETE")
	}
	raw, _ := req["url"].(string)
	if err := e.parseURL(raw, base); err != nil {
		return nil, err
	}
	if s, _ := req["ifMatch"].(string); s != "" {
		n, err := parseETag(s)
		if err != nil {
			return nil, e.entryErr(http.StatusBadRequest, "value", "request.ifMatch", `must be an ETag like W/"3"`)
		}
		e.ifMatch = n
	}
	if s, _ := req["ifNoneExist"].(string); s != "" {
		q, err := url.ParseQuery(s)
		if err != nil || len(q) == 0 || e.method != "POST" {
			return nil, e.entryErr(http.StatusBadRequest, "invalid", "request.ifNoneExist", "must be a search query such as identifier=system|value, on a POST")
		}
		e.ifNoneExist = q
	}
	res, hasRes := m["resource"].(map[string]any)
	if _, present := m["resource"]; present && !hasRes {
		return nil, e.entryErr(http.StatusBadRequest, "structure", "resource", "must be a resource object")
	}
	if hasRes {
		e.res = fhir.Resource(res)
	}
	switch e.method {
	case "POST", "PUT":
		if e.res == nil {
			return nil, e.entryErr(http.StatusBadRequest, "required", "resource", e.method+" needs a resource")
		}
		if e.res.Type() != e.typ {
			return nil, e.entryErr(http.StatusBadRequest, "invalid", "resource.resourceType", "does not match request.url")
		}
		if e.method == "PUT" && e.id != "" {
			if rid, _ := e.res["id"].(string); rid != e.id {
				return nil, e.entryErr(http.StatusBadRequest, "invalid", "resource.id", "must equal the id in request.url")
			}
		}
	case "PATCH":
		if e.res == nil || e.res.Type() != "Binary" {
			return nil, e.entryErr(http.StatusBadRequest, "required", "resource", "PATCH needs a Binary resource holding a JSON Patch")
		}
	}
	return e, nil
}

// parseURL checks request.url against what the method allows: POST Type;
// PUT and DELETE Type/id or Type?query; PATCH Type/id; GET and HEAD
// Type/id, Type/id/_history/vid or Type?query. An absolute URL under base
// is accepted as relative.
func (e *bundleEntry) parseURL(raw, base string) error {
	bad := func(msg string) error { return e.entryErr(http.StatusBadRequest, "invalid", "request.url", msg) }
	s := raw
	if base != "" {
		s = strings.TrimPrefix(s, strings.TrimSuffix(base, "/")+"/")
	}
	s = strings.TrimPrefix(s, "/")
	path, rawQuery, hasQuery := strings.Cut(s, "?")
	if path == "" || strings.Contains(s, "#") {
		return bad("must be a relative URL such as Patient, Patient/123 or Patient?identifier=sys|val")
	}
	if hasQuery {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return bad("the query is not valid")
		}
		e.query = q
	}
	parts := strings.Split(path, "/")
	e.typ = parts[0]
	if !fhir.IsResourceType(e.typ) {
		return bad("does not start with a known resource type")
	}
	if e.typ == "AuditEvent" && e.method != "GET" && e.method != "HEAD" {
		return bad("writes AuditEvent, which only the server's audit log appends")
	}
	for _, p := range parts[1:] {
		if !fhir.IsID(p) && p != "_history" {
			return bad("has an invalid id: ids are 1-64 characters of A-Z, a-z, 0-9, '-' and '.'")
		}
	}
	switch {
	case len(parts) == 2 && parts[1] != "_history":
		e.id = parts[1]
	case len(parts) == 4 && parts[2] == "_history" && parts[1] != "_history" && parts[3] != "_history" && (e.method == "GET" || e.method == "HEAD"):
		e.id, e.vid = parts[1], parts[3]
	case len(parts) != 1:
		return bad("must be Type, Type/id, Type/id/_history/vid or Type?query")
	}
	if hasQuery && e.id != "" {
		return bad("a URL with an id takes no search parameters")
	}
	e.url = path
	if hasQuery {
		e.url += "?" + e.query.Encode()
	}
	switch e.method {
	case "POST":
		if e.id != "" || hasQuery {
			return bad("a POST entry's url is the resource type alone")
		}
	case "PUT", "DELETE":
		if e.id == "" && len(e.query) == 0 {
			return bad(e.method + " needs Type/id or a conditional Type?query")
		}
	case "PATCH":
		if e.id == "" {
			return bad("PATCH needs Type/id")
		}
	}
	return nil
}
