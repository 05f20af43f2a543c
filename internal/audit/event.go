// Package audit records every access to patient data before the data
// leaves, as FHIR AuditEvents following the IHE Basic Audit Log Patterns
// (BALP), appended to a tamper-evident log. Recording is fail-closed: if an
// event cannot be made durable the request fails. Events hold references
// and ids, never patient values; a value that must be recorded (a search
// string) is recorded as a keyed hash.
package audit

import "time"

// Outcome codes of AuditEvent.outcome.
const (
	Success      = "0"
	MinorFailure = "4" // the client's mistake or a denial
	SeriousFail  = "8" // the server failed
)

// Event is one audited action.
type Event struct {
	Time        time.Time
	Interaction string // FHIR interaction or operation: read, vread, search-type, create, update, patch, delete, history-instance, transaction, batch, login, ...
	Action      string // AuditEvent.action: C, R, U, D, E
	Outcome     string
	OutcomeDesc string // client-safe text, no patient data

	UserID     string
	Roles      []string
	ClientID   string
	SourceIP   string
	UserAgent  string
	AuthMethod string
	Purpose    string

	Patients   []string // patient ids whose data was touched
	Entities   []string // "Type/id/_history/vid" or "Type/id" of every resource returned or changed
	Query      string   // keyed hash of the query string, for searches
	Allowed    bool
	Policies   []string
	BreakGlass bool
}

// AuditEvent renders e as a FHIR R4 AuditEvent (BALP "RESTful activity").
// It is the reference for the leaf format: Leaf writes exactly its JSON.
func (e *Event) AuditEvent() map[string]any {
	typ := map[string]any{"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"}
	if e.Interaction == "login" || e.Interaction == "logout" || e.Interaction == "login-failed" {
		typ = map[string]any{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110114", "display": "User Authentication"}
	}
	ae := map[string]any{
		"resourceType": "AuditEvent",
		"type":         typ,
		"subtype":      []any{map[string]any{"system": "http://hl7.org/fhir/restful-interaction", "code": e.Interaction}},
		"action":       e.Action,
		"recorded":     e.Time.UTC().Format(time.RFC3339Nano),
		"outcome":      e.Outcome,
		"source": map[string]any{
			"observer": map[string]any{"display": "phivault"},
			"type":     []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}},
		},
	}
	if e.OutcomeDesc != "" {
		ae["outcomeDesc"] = e.OutcomeDesc
	}
	agent := map[string]any{
		"type":      map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "code": "humanuser"}}},
		"who":       map[string]any{"identifier": map[string]any{"system": "urn:phivault:user", "value": e.UserID}},
		"requestor": true,
	}
	if len(e.Roles) > 0 {
		roles := make([]any, len(e.Roles))
		for i, r := range e.Roles {
			roles[i] = map[string]any{"coding": []any{map[string]any{"system": "urn:phivault:role", "code": r}}}
		}
		agent["role"] = roles
	}
	if e.SourceIP != "" {
		agent["network"] = map[string]any{"address": e.SourceIP, "type": "2"}
	}
	if e.Purpose != "" {
		agent["purposeOfUse"] = []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": e.Purpose}}}}
	}
	agents := []any{agent}
	if e.ClientID != "" {
		agents = append(agents, map[string]any{
			"type":      map[string]any{"coding": []any{map[string]any{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110150", "display": "Application"}}},
			"who":       map[string]any{"identifier": map[string]any{"system": "urn:phivault:client", "value": e.ClientID}},
			"requestor": false,
		})
	}
	ae["agent"] = agents
	var ents []any
	for _, p := range e.Patients {
		ents = append(ents, map[string]any{"what": map[string]any{"reference": "Patient/" + p}, "type": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"}, "role": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"}})
	}
	for _, r := range e.Entities {
		ents = append(ents, map[string]any{"what": map[string]any{"reference": r}, "type": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"}})
	}
	if e.Query != "" {
		ents = append(ents, map[string]any{"type": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"}, "role": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24"}, "description": "query (keyed hash)", "name": e.Query})
	}
	if len(ents) > 0 {
		ae["entity"] = ents
	}
	ext := []any{map[string]any{"url": "urn:phivault:decision", "valueCode": map[bool]string{true: "permit", false: "deny"}[e.Allowed]}}
	for _, p := range e.Policies {
		ext = append(ext, map[string]any{"url": "urn:phivault:policy", "valueString": p})
	}
	if e.BreakGlass {
		ext = append(ext, map[string]any{"url": "urn:phivault:break-glass", "valueBoolean": true})
	}
	if e.UserAgent != "" {
		ext = append(ext, map[string]any{"url": "urn:phivault:user-agent", "valueString": e.UserAgent})
	}
	if e.AuthMethod != "" {
		ext = append(ext, map[string]any{"url": "urn:phivault:auth-method", "valueString": e.AuthMethod})
	}
	ae["extension"] = ext
	return ae
}
