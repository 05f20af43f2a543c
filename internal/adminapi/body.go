package adminapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/authn/account"
)

// maxBody bounds a request body.
const maxBody = 64 << 10

// createRequest is the body of POST /admin/v1/users. The password never
// prints (account.Password redacts itself).
type createRequest struct {
	ID           string           `json:"id"`
	Name         string           `json:"name"`
	Roles        []string         `json:"roles"`
	Practitioner string           `json:"practitioner"`
	Patient      string           `json:"patient"`
	Department   string           `json:"department"`
	Password     account.Password `json:"password"`
}

// reasonRequest is the body of disable and enable.
type reasonRequest struct {
	Reason string `json:"reason"`
}

// rolesRequest is the body of PUT .../roles; Roles must be present.
type rolesRequest struct {
	Roles *[]string `json:"roles"`
}

// keepRequest is the body of a recertification; Keep must be present
// (an empty list revokes every role).
type keepRequest struct {
	Keep *[]string `json:"keep"`
}

// trainingRequest is the body of POST .../training.
type trainingRequest struct {
	Course    string `json:"course"` // default "hipaa"
	Completed date   `json:"completed"`
	Expires   date   `json:"expires"`
}

// date is a JSON date: "2026-03-01" or RFC 3339.
type date struct{ time.Time }

func (d *date) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("a date is a string such as \"2026-03-01\"")
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		d.Time = t
		return nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		d.Time = t.UTC()
		return nil
	}
	return errors.New("a date looks like \"2026-03-01\" or RFC 3339")
}

// readBody reads r's body (at most maxBody). A non-empty body must be
// declared JSON.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, errorf(http.StatusRequestEntityTooLarge, "too-large", "the body is larger than %d bytes", maxBody)
	case err != nil:
		return nil, errorf(http.StatusBadRequest, "invalid", "the body could not be read")
	}
	if len(bytes.TrimSpace(b)) > 0 {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt != "application/json" {
			return nil, errorf(http.StatusUnsupportedMediaType, "not-supported", "send the body as Content-Type: application/json")
		}
	}
	return b, nil
}

// decode parses b as exactly one JSON object into v, refusing unknown
// fields. An empty body is allowed only when optional.
func decode(b []byte, v any, optional bool) error {
	if len(bytes.TrimSpace(b)) == 0 {
		if optional {
			return nil
		}
		return errorf(http.StatusBadRequest, "invalid", "a JSON object body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "invalid", "the body is not valid: %s", jsonText(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "invalid", "the body must be one JSON object")
	}
	return nil
}

// jsonText is a decoding error in words that repeat no input value.
func jsonText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "malformed JSON"
	case errors.As(err, &te):
		return "field " + te.Field + " has the wrong type"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early"
	}
	if strings.HasPrefix(err.Error(), "a date") {
		return err.Error()
	}
	return "expected a JSON object"
}

// parseCreate parses and checks the shape of a create body; the directory
// checks the values.
func parseCreate(b []byte) (createRequest, error) {
	var req createRequest
	if err := decode(b, &req, false); err != nil {
		return req, err
	}
	if req.ID == "" || len(req.Roles) == 0 {
		return req, errorf(http.StatusBadRequest, "required", "a new user needs an id and at least one role")
	}
	if req.Password == "" {
		return req, errorf(http.StatusBadRequest, "required", "a new user needs a password (at least 12 characters)")
	}
	return req, nil
}

// parseReason parses a disable or enable body; required says whether a
// reason must be given.
func parseReason(b []byte, required bool) (string, error) {
	var req reasonRequest
	if err := decode(b, &req, !required); err != nil {
		return "", err
	}
	if required && strings.TrimSpace(req.Reason) == "" {
		return "", errorf(http.StatusBadRequest, "required", "give a reason (it is recorded in the audit log)")
	}
	return req.Reason, nil
}

// parseRoles parses a roles body: {"roles": [...]}.
func parseRoles(b []byte) ([]string, error) {
	var req rolesRequest
	if err := decode(b, &req, false); err != nil {
		return nil, err
	}
	if req.Roles == nil {
		return nil, errorf(http.StatusBadRequest, "required", `give the new roles: {"roles": ["nurse"]}`)
	}
	return *req.Roles, nil
}

// parseKeep parses a recertification body: {"keep": [...]}.
func parseKeep(b []byte) ([]string, error) {
	var req keepRequest
	if err := decode(b, &req, false); err != nil {
		return nil, err
	}
	if req.Keep == nil {
		return nil, errorf(http.StatusBadRequest, "required", `give the roles to keep (the rest are revoked): {"keep": ["nurse"]}`)
	}
	return *req.Keep, nil
}

// parseTraining parses a training body.
func parseTraining(b []byte) (account.Training, error) {
	var req trainingRequest
	if err := decode(b, &req, false); err != nil {
		return account.Training{}, err
	}
	if req.Course == "" {
		req.Course = "hipaa"
	}
	if req.Completed.IsZero() || req.Expires.IsZero() {
		return account.Training{}, errorf(http.StatusBadRequest, "required", "a training record needs completed and expires dates")
	}
	return account.Training{Course: req.Course, Completed: req.Completed.Time, Expires: req.Expires.Time}, nil
}
