package fhirapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/policy"
)

// batch processes a batch Bundle: each entry on its own, in bundle order,
// as an internal request through the same handlers as a direct request, so
// that every entry is decided and audited exactly like one. A failing entry
// gets its status and OperationOutcome in response.outcome; the others
// still succeed. Entries may not depend on each other: a reference to
// another entry's fullUrl, or any urn: reference, fails that entry (400).
// Conditional references are resolved as in a transaction.
//
// The batch itself leaves one more audit event (interaction "batch") that
// names no resources: each entry's own event does.
func (a *API) batch(c *call, b *bundleReq) error {
	h := a.Handler()
	full := map[string]bool{}
	for _, e := range b.entries {
		if e.fullURL != "" {
			full[e.fullURL] = true
		}
	}
	// Entries are independent, so they run concurrently: their durable
	// commits share group commits instead of paying one fsync each.
	entries := make([]any, len(b.entries))
	work := make(chan *bundleEntry)
	var wg sync.WaitGroup
	for range min(batchWorkers, len(b.entries)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range work {
				entries[e.i] = a.batchEntry(c, h, e, full)
			}
		}()
	}
	for _, e := range b.entries {
		work <- e
	}
	close(work)
	wg.Wait()
	if err := a.record(c); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"resourceType": "Bundle", "type": "batch-response", "entry": entries})
	return nil
}

// batchWorkers bounds how many entries of one batch run at once.
const batchWorkers = 16

// batchEntry runs one batch entry as an internal request.
func (a *API) batchEntry(c *call, h http.Handler, e *bundleEntry, full map[string]bool) map[string]any {
	var body []byte
	if e.res != nil {
		res := cloneResource(e.res)
		var err error
		if e.method == "PATCH" {
			body, err = binaryData(res)
		} else if err = newRefResolver(c.ctx, callerSearcher{a, c}, nil, full).rewrite(e, res); err == nil {
			body, err = json.Marshal(res)
		}
		if err != nil {
			return failedEntry(err)
		}
	}
	return a.dispatch(c, h, e, body)
}

// failedEntry renders a client error as a response entry.
func failedEntry(err error) map[string]any {
	var fe *Error
	if !errors.As(err, &fe) {
		fe = errorf(http.StatusInternalServerError, "exception", "internal error")
	}
	return map[string]any{"response": map[string]any{"status": statusLine(fe.Status), "outcome": fe.Outcome()}}
}

// dispatch runs entry e as an internal request against h with the caller's
// principal, purpose, client address and Prefer header, and renders the
// response as a bundle response entry. body is the request body for
// POST, PUT and PATCH.
func (a *API) dispatch(c *call, h http.Handler, e *bundleEntry, body []byte) map[string]any {
	ctx := policy.WithPrincipal(c.ctx, c.who)
	r, err := http.NewRequestWithContext(ctx, e.method, "/fhir/"+e.url, bytes.NewReader(body))
	if err != nil {
		return failedEntry(e.entryErr(http.StatusBadRequest, "invalid", "request.url", "not a valid URL"))
	}
	r.RemoteAddr = c.r.RemoteAddr
	for _, k := range []string{"Prefer", "X-Purpose-Of-Use", "User-Agent"} {
		if v := c.r.Header.Get(k); v != "" {
			r.Header.Set(k, v)
		}
	}
	switch {
	case e.method == "PATCH":
		r.Header.Set("Content-Type", "application/json-patch+json")
	case body != nil:
		r.Header.Set("Content-Type", "application/fhir+json")
	}
	if e.ifMatch != 0 {
		r.Header.Set("If-Match", etag(e.ifMatch))
	}
	if len(e.ifNoneExist) > 0 {
		r.Header.Set("If-None-Exist", e.ifNoneExist.Encode())
	}
	w := &memWriter{h: http.Header{}}
	h.ServeHTTP(w, r)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	resp := map[string]any{"status": statusLine(w.status)}
	out := map[string]any{"response": resp}
	if v := w.h.Get("Location"); v != "" {
		resp["location"] = strings.TrimPrefix(v, a.Base+"/")
	}
	if v := w.h.Get("ETag"); v != "" {
		resp["etag"] = v
	}
	if t, err := http.ParseTime(w.h.Get("Last-Modified")); err == nil {
		resp["lastModified"] = t.UTC().Format(time.RFC3339)
	}
	if w.buf.Len() == 0 || e.method == "HEAD" {
		return out
	}
	var peek struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	_ = json.Unmarshal(w.buf.Bytes(), &peek)
	switch {
	case w.status >= 300 || peek.ResourceType == "OperationOutcome" && e.method != "GET":
		resp["outcome"] = rawJSON(w.buf.Bytes())
	default:
		out["resource"] = rawJSON(w.buf.Bytes())
		if peek.ID != "" && peek.ResourceType != "Bundle" {
			out["fullUrl"] = a.Base + "/" + peek.ResourceType + "/" + peek.ID
		}
	}
	return out
}

// memWriter is an in-memory http.ResponseWriter for internal requests.
type memWriter struct {
	h      http.Header
	status int
	buf    bytes.Buffer
}

func (w *memWriter) Header() http.Header { return w.h }

func (w *memWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *memWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.buf.Write(b)
}

// binaryData returns the JSON Patch document a PATCH entry carries in a
// Binary resource (contentType application/json-patch+json, data base64).
func binaryData(res fhir.Resource) ([]byte, error) {
	ct, _ := res["contentType"].(string)
	data, _ := res["data"].(string)
	if ct != "application/json-patch+json" {
		return nil, errorf(http.StatusUnsupportedMediaType, "not-supported", "a PATCH entry's Binary must have contentType application/json-patch+json")
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "structure", "the Binary data is not base64")
	}
	return b, nil
}

// applyBinaryPatch applies the JSON Patch in a PATCH entry's Binary to the
// current body.
func applyBinaryPatch(bin fhir.Resource, cur []byte) ([]byte, error) {
	raw, err := binaryData(bin)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "structure", "the Binary data is not a JSON Patch document")
	}
	out, err := p.ApplyWithOptions(cur, &jsonpatch.ApplyOptions{AccumulatedCopySizeLimit: MaxBody})
	if err != nil {
		return nil, errorf(http.StatusUnprocessableEntity, "processing", "the patch cannot be applied to the current version")
	}
	return out, nil
}
