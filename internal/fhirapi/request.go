package fhirapi

import (
	"compress/gzip"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/phivault/phivault/internal/fhir"
)

// MaxBody bounds a request body; the server also enforces it.
const MaxBody = 16 << 20

// target returns the {type} and {id} path values, checked.
func (c *call) target(withID bool) (typ, id string, err error) {
	typ = c.r.PathValue("type")
	if (typ == "metadata" || typ == "_history") && c.r.Method != http.MethodGet {
		// GET-only endpoints reached by another method's {type} route.
		return "", "", errorf(http.StatusMethodNotAllowed, "not-supported", "this endpoint supports only GET")
	}
	if !fhir.IsResourceType(typ) {
		return "", "", errorf(http.StatusNotFound, "not-supported", "unknown resource type")
	}
	if typ == "AuditEvent" {
		// The audit log, served by audit_search.go (search and read); it
		// is never written, versioned or stored as a resource.
		if c.r.Method == http.MethodGet {
			return "", "", errNoAuditHistory
		}
		return "", "", errNoAuditWrite
	}
	if withID {
		id = c.r.PathValue("id")
		if !fhir.IsID(id) {
			return "", "", errorf(http.StatusBadRequest, "value", "invalid resource id: ids are 1-64 characters of A-Z, a-z, 0-9, '-' and '.'")
		}
	}
	return typ, id, nil
}

// body reads a JSON request body of one of the allowed media types.
func (c *call) body(allowed ...string) ([]byte, error) {
	ct := c.r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, errorf(http.StatusUnsupportedMediaType, "not-supported", "Content-Type must be application/fhir+json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, errorf(http.StatusUnsupportedMediaType, "not-supported", "only the UTF-8 charset is supported")
	}
	if !fhirR4(params["fhirversion"]) {
		return nil, errorf(http.StatusUnsupportedMediaType, "not-supported", "this server takes FHIR R4 only (fhirVersion=4.0)")
	}
	ok := false
	for _, a := range allowed {
		ok = ok || mt == a
	}
	if !ok {
		return nil, errorf(http.StatusUnsupportedMediaType, "not-supported", "Content-Type must be one of "+strings.Join(allowed, ", "))
	}
	var rd io.Reader = http.MaxBytesReader(c.w, c.r.Body, MaxBody)
	readFailed := "could not read the request body"
	switch enc := strings.ToLower(strings.TrimSpace(c.r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		readFailed = "the gzip-encoded request body is not valid gzip"
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, bodyError(err, readFailed)
		}
		defer zr.Close()
		rd = zr
	default:
		return nil, errorf(http.StatusUnsupportedMediaType, "not-supported", "Content-Encoding must be gzip or identity")
	}
	// MaxBody bounds what is read after decompression as well.
	b, err := io.ReadAll(io.LimitReader(rd, MaxBody+1))
	if err != nil {
		return nil, bodyError(err, readFailed)
	}
	if len(b) > MaxBody {
		return nil, errorf(http.StatusRequestEntityTooLarge, "too-costly", "request body too large")
	}
	return b, nil
}

// bodyError is the answer to a failed read of a request body: 413 when it
// exceeded MaxBody, otherwise a 400 saying msg.
func bodyError(err error, msg string) *Error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errorf(http.StatusRequestEntityTooLarge, "too-costly", "request body too large")
	}
	return errorf(http.StatusBadRequest, "structure", msg)
}

var jsonTypes = []string{"application/fhir+json", "application/json"}

// resource reads, parses and validates a resource body of type typ (any
// type if typ is "").
func (c *call) resource(typ string) (fhir.Resource, error) {
	b, err := c.body(jsonTypes...)
	if err != nil {
		return nil, err
	}
	return parseResource(b, typ)
}

func parseResource(b []byte, typ string) (fhir.Resource, error) {
	res, err := fhir.Parse(b)
	if err != nil {
		var fe *fhir.Error
		if errors.As(err, &fe) {
			return nil, invalid(http.StatusBadRequest, []fhir.Issue{fe.Issue()})
		}
		return nil, errorf(http.StatusBadRequest, "structure", "the body is not a FHIR JSON resource")
	}
	if typ != "" && res.Type() != typ {
		return nil, errorf(http.StatusBadRequest, "invalid", "resourceType does not match the URL")
	}
	if issues := fhir.Validate(res); fhir.HasErrors(issues) {
		return nil, invalid(http.StatusUnprocessableEntity, issues)
	}
	return res, nil
}

// instance returns the {type} and {id} of a request on one resource and
// its If-Match version (0 when absent).
func (c *call) instance() (typ, id string, ifMatch int64, err error) {
	if typ, id, err = c.target(true); err != nil {
		return "", "", 0, err
	}
	ifMatch, err = c.ifMatch()
	return typ, id, ifMatch, err
}

// ifMatch parses If-Match (W/"3" or "3"); 0 when absent.
func (c *call) ifMatch() (int64, error) {
	return parseETag(c.r.Header.Get("If-Match"))
}

func parseETag(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	v = strings.TrimPrefix(v, "W/")
	v = strings.TrimSuffix(strings.TrimPrefix(v, `"`), `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, errorf(http.StatusBadRequest, "value", `If-Match must be an ETag like W/"3"`)
	}
	return n, nil
}

// prefer returns the Prefer return= value: minimal, representation (the
// default) or OperationOutcome.
func (c *call) prefer() string {
	for _, part := range strings.Split(c.r.Header.Get("Prefer"), ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "return="); ok {
			return v
		}
	}
	return "representation"
}

func etag(vid int64) string { return `W/"` + strconv.FormatInt(vid, 10) + `"` }
