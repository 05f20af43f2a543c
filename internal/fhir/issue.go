package fhir

import (
	"fmt"
	"sort"
)

// Severity of an Issue, as in OperationOutcome.issue.severity.
type Severity string

// Issue severities used by this package.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Issue type codes (http://hl7.org/fhir/issue-type) used by this package.
const (
	CodeStructure   = "structure"    // unknown element, wrong JSON shape
	CodeRequired    = "required"     // a required element is missing
	CodeValue       = "value"        // a primitive value has the wrong format
	CodeCodeInvalid = "code-invalid" // a code is not in its required value set
	CodeInvalid     = "invalid"      // anything else: cardinality, bad JSON
)

// Issue is one validation finding. Location is a FHIRPath-like path such as
// Patient.name[0].given[1]; Message is safe to show to a client: it never contains a value
// taken from the resource.
type Issue struct {
	Severity Severity
	Code     string
	Location string
	Message  string
}

func (i Issue) String() string {
	return fmt.Sprintf("%s %s at %s: %s", i.Severity, i.Code, i.Location, i.Message)
}

// Error is returned by Parse. Its text is client-safe: a location and a message, never a value
// from the input.
type Error struct {
	Code     string // issue type code, e.g. "structure"
	Location string // FHIRPath-like location, "" when unknown
	Offset   int64  // byte offset in the input where the problem was found
	Message  string
}

func (e *Error) Error() string {
	if e.Location == "" {
		return fmt.Sprintf("fhir: %s (at byte %d)", e.Message, e.Offset)
	}
	return fmt.Sprintf("fhir: %s at %s (byte %d)", e.Message, e.Location, e.Offset)
}

// Issue converts the error into a validation issue, for OperationOutcome.
func (e *Error) Issue() Issue {
	return Issue{Severity: SeverityError, Code: e.Code, Location: e.Location, Message: e.Message}
}

// HasErrors reports whether any issue has error severity.
func HasErrors(issues []Issue) bool {
	for _, i := range issues {
		if i.Severity == SeverityError {
			return true
		}
	}
	return false
}

func sortIssues(issues []Issue) {
	sort.SliceStable(issues, func(a, b int) bool {
		if issues[a].Location != issues[b].Location {
			return issues[a].Location < issues[b].Location
		}
		return issues[a].Message < issues[b].Message
	})
}

// OperationOutcome builds a FHIR OperationOutcome resource reporting issues. With no issues
// it reports a single informational "all ok" issue, as the spec requires at least one.
func OperationOutcome(issues []Issue) Resource {
	list := make([]any, 0, len(issues))
	for _, i := range issues {
		sev := string(i.Severity)
		if sev == "" {
			sev = string(SeverityError)
		}
		code := i.Code
		if code == "" {
			code = CodeInvalid
		}
		entry := map[string]any{"severity": sev, "code": code}
		if i.Message != "" {
			entry["diagnostics"] = i.Message
		}
		if i.Location != "" {
			entry["expression"] = []any{i.Location}
		}
		list = append(list, entry)
	}
	if len(list) == 0 {
		list = append(list, map[string]any{"severity": "information", "code": "informational", "diagnostics": "all ok"})
	}
	return Resource{"resourceType": "OperationOutcome", "issue": list}
}
