package detect

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The parts of a FHIR R4 AuditEvent that an import reads.
type aeCoding struct {
	System, Code, Display string
}

type aeConcept struct {
	Coding []aeCoding
	Text   string
}

type aeRef struct {
	Reference  string
	Display    string
	Identifier struct{ System, Value string }
}

type auditEvent struct {
	ResourceType string
	Subtype      []aeCoding
	Action       string
	Recorded     string
	Outcome      string
	Agent        []struct {
		Who          aeRef
		Requestor    bool
		Role         []aeConcept
		Location     aeRef
		Network      struct{ Address string }
		PurposeOfUse []aeConcept
	}
	Source struct {
		Site string
	}
	Entity []struct {
		What aeRef
	}
	PurposeOfEvent []aeConcept
	Extension      []struct {
		URL          string
		ValueBoolean bool
	}
}

// interactions maps AuditEvent subtype codes (FHIR restful-interaction,
// DICOM audit event ids, phivault's own) to the action vocabulary.
var interactions = map[string]string{
	"read": "read", "vread": "read", "history": "read", "history-instance": "read",
	"search": "search", "search-type": "search", "search-system": "search", "history-type": "search", "history-system": "search",
	"create": "create", "update": "update", "patch": "update", "delete": "delete",
	"print": "print", "export": "export", "$export": "export", "110106": "export",
	"login": "login", "110122": "login", "login-failed": "login-failed", "logout": "logout", "110123": "logout",
	"break-glass": "break-glass",
}

// crud maps AuditEvent.action to the vocabulary when no subtype does.
var crud = map[string]string{"C": "create", "R": "read", "U": "update", "D": "delete"}

// ParseAuditEvent reads one FHIR R4 AuditEvent (JSON) as a Row: the
// requesting agent (or the only one) is the user (who.identifier.value,
// else the id of who.reference), its display the user name, its first
// role the role, its location the department, its network address the
// source IP; source.site is the workstation; the first entity that
// references a Patient is the patient and the first other reference the
// resource (else the Patient itself); recorded is the time; subtype (else
// action) gives the action; outcome 0 is success, 4, 8 and 12 failure.
// A break-the-glass flag (purpose BTG or phivault's extension) on a
// patient access makes it a break-glass action. Error texts carry no ids.
func ParseAuditEvent(b []byte) (Row, error) {
	var ae auditEvent
	var r Row
	if err := json.Unmarshal(b, &ae); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return r, fmt.Errorf("not JSON (at byte %d)", se.Offset)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return r, fmt.Errorf("field %s has the wrong JSON type", clip(jsonPath(te.Field)))
		}
		return r, errors.New("not a JSON object")
	}
	if ae.ResourceType != "AuditEvent" {
		return r, fmt.Errorf("resourceType is %q, not AuditEvent", clip(ae.ResourceType))
	}
	if len(ae.Agent) == 0 {
		return r, errors.New("no agent")
	}
	ag := ae.Agent[0]
	for _, a := range ae.Agent {
		if a.Requestor {
			ag = a
			break
		}
	}
	r.UserID = strings.TrimSpace(ag.Who.Identifier.Value)
	if r.UserID == "" {
		ref := ag.Who.Reference
		r.UserID = strings.TrimSpace(ref[strings.LastIndexByte(ref, '/')+1:])
	}
	r.UserName = strings.TrimSpace(ag.Who.Display)
	if len(ag.Role) > 0 {
		r.UserRole = ag.Role[0].Text
		if len(ag.Role[0].Coding) > 0 && r.UserRole == "" {
			r.UserRole = ag.Role[0].Coding[0].Code
		}
	}
	r.Department = strings.TrimSpace(ag.Location.Display)
	r.SourceIP = strings.TrimSpace(ag.Network.Address)
	r.Workstation = strings.TrimSpace(ae.Source.Site)
	var resource string
	for _, e := range ae.Entity {
		ref := strings.TrimSpace(e.What.Reference)
		typ, rest, ok := strings.Cut(ref, "/")
		if !ok || typ == "" || rest == "" {
			continue
		}
		id, _, _ := strings.Cut(rest, "/") // drop _history/vid
		if typ == "Patient" && r.PatientID == "" {
			r.PatientID = id
		}
		if resource == "" || (typ != "Patient" && r.ResourceType == "Patient") {
			resource, r.ResourceType, r.ResourceID = ref, typ, id
		}
	}
	for _, c := range ae.Subtype {
		if a, ok := interactions[c.Code]; ok {
			r.Action = a
			break
		}
	}
	if r.Action == "" {
		r.Action = crud[ae.Action]
	}
	if r.Action == "" {
		return r, errors.New("neither subtype nor action names an action this import knows")
	}
	switch ae.Outcome {
	case "0":
		r.Outcome = "success"
	case "4", "8", "12":
		r.Outcome = "failure"
		if r.Action == "login" {
			r.Action = "login-failed"
		}
	case "":
	default:
		return r, fmt.Errorf("outcome %q is not 0, 4, 8 or 12", clip(ae.Outcome))
	}
	if r.PatientID != "" && aeBreakGlass(&ae, ag.PurposeOfUse) {
		r.Action = "break-glass"
	}
	if err := r.canonical(ae.Recorded); err != nil {
		if ae.Recorded == "" {
			return r, errors.New("no recorded time")
		}
		return r, err
	}
	return r, nil
}

func aeBreakGlass(ae *auditEvent, agentPurpose []aeConcept) bool {
	for _, x := range ae.Extension {
		if x.URL == "urn:phivault:break-glass" && x.ValueBoolean {
			return true
		}
	}
	for _, c := range slices.Concat(agentPurpose, ae.PurposeOfEvent) {
		for _, cd := range c.Coding {
			if cd.Code == "BTG" {
				return true
			}
		}
	}
	return false
}

// jsonPath turns a Go field path (Agent.Who.Reference) into the
// AuditEvent's element path (agent.who.reference).
func jsonPath(goPath string) string {
	parts := strings.Split(goPath, ".")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToLower(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, ".")
}
