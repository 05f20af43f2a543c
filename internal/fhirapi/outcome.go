package fhirapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/phivault/phivault/internal/fhir"
)

// Error is a client-facing failure: an HTTP status and an OperationOutcome.
// Its messages are meant for the client and never contain patient data.
type Error struct {
	Status  int
	Code    string // issue type code
	Msg     string
	Issues  []fhir.Issue // validation findings, if any
	audited bool         // the interaction already recorded its own event
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Msg) }

func errorf(status int, code, msg string) *Error { return &Error{Status: status, Code: code, Msg: msg} }

// invalid returns a 400 error for validation issues.
func invalid(status int, issues []fhir.Issue) *Error {
	msg := "the resource is not valid FHIR R4"
	if len(issues) > 0 {
		msg = issues[0].String()
	}
	return &Error{Status: status, Code: "invalid", Msg: msg, Issues: issues}
}

// Outcome renders e as an OperationOutcome.
func (e *Error) Outcome() map[string]any {
	if len(e.Issues) > 0 {
		return fhir.OperationOutcome(e.Issues)
	}
	sev := "error"
	if e.Status >= 500 {
		sev = "fatal"
	}
	return map[string]any{
		"resourceType": "OperationOutcome",
		"issue":        []any{map[string]any{"severity": sev, "code": e.Code, "diagnostics": e.Msg}},
	}
}

func writeOutcome(w http.ResponseWriter, e *Error) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="phivault"`)
	}
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, e.Status, e.Outcome())
}

// info returns an informational OperationOutcome with one message.
func info(msg string) map[string]any {
	return map[string]any{
		"resourceType": "OperationOutcome",
		"issue":        []any{map[string]any{"severity": "information", "code": "informational", "diagnostics": msg}},
	}
}

const fhirJSON = "application/fhir+json; charset=utf-8"

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception","diagnostics":"internal error"}]}`)
	}
	writeBody(w, status, b)
}

// writeBody writes the FHIR JSON answer b with its length, so that it
// goes out in one piece rather than chunked.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", fhirJSON)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
