package detect

import (
	"errors"
	"strings"
	"time"
)

// liveEvent is what the live rules read from one audit leaf: who did what
// to which patients, when, from where, and whether it was allowed and
// made under break-the-glass.
type liveEvent struct {
	Index       uint64 // leaf index in the audit log
	T           time.Time
	Interaction string
	User        string
	SourceIP    string
	Patients    []string
	Outcome     string
	Allowed     bool
	BreakGlass  bool   // flagged, or allowed by the break-the-glass policy
	Until       string // for a "break-glass" opening: the window's end as recorded, if any
}

// leafJSON is the part of a phivault AuditEvent (audit.Event.AuditEvent)
// that the live rules need.
type leafJSON struct {
	ResourceType string          `json:"resourceType"`
	Recorded     string          `json:"recorded"`
	Outcome      string          `json:"outcome"`
	OutcomeDesc  string          `json:"outcomeDesc"`
	Subtype      []leafSubtype   `json:"subtype"`
	Agent        []leafAgent     `json:"agent"`
	Entity       []leafEntity    `json:"entity"`
	Extension    []leafExtension `json:"extension"`
}

type leafSubtype struct {
	Code string `json:"code"`
}

type leafAgent struct {
	Requestor bool `json:"requestor"`
	Who       struct {
		Identifier struct{ System, Value string } `json:"identifier"`
	} `json:"who"`
	Network struct {
		Address string `json:"address"`
	} `json:"network"`
}

type leafEntity struct {
	What struct {
		Reference string `json:"reference"`
	} `json:"what"`
	Type struct {
		Code string `json:"code"`
	} `json:"type"`
}

type leafExtension struct {
	URL          string `json:"url"`
	ValueCode    string `json:"valueCode"`
	ValueString  string `json:"valueString"`
	ValueBoolean bool   `json:"valueBoolean"`
}

// breakGlassPolicy is the @id of the default Cedar policy that allows
// access during a break-the-glass window.
const breakGlassPolicy = "break-the-glass"

var errNotAuditEvent = errors.New("detect: leaf is not an AuditEvent")

// parseLeaf reads one audit leaf (compact AuditEvent JSON). It fails on
// anything that is not an AuditEvent with a recorded time; a leaf with no
// user or patients is valid (the rules skip what they cannot use).
func parseLeaf(index uint64, leaf []byte) (liveEvent, error) {
	var x leafJSON
	if err := decodeLeaf(leaf, &x); err != nil {
		return liveEvent{}, err
	}
	if x.ResourceType != "AuditEvent" {
		return liveEvent{}, errNotAuditEvent
	}
	t, err := time.Parse(time.RFC3339Nano, x.Recorded)
	if err != nil {
		return liveEvent{}, err
	}
	ev := liveEvent{Index: index, T: t.UTC(), Outcome: x.Outcome}
	if len(x.Subtype) > 0 {
		ev.Interaction = x.Subtype[0].Code
	}
	for _, a := range x.Agent {
		if a.Requestor {
			ev.User, ev.SourceIP = a.Who.Identifier.Value, a.Network.Address
			break
		}
	}
	for _, e := range x.Entity {
		if e.Type.Code == "1" {
			if id, ok := strings.CutPrefix(e.What.Reference, "Patient/"); ok && id != "" && !containsStr(ev.Patients, id) {
				ev.Patients = append(ev.Patients, id)
			}
		}
	}
	for _, e := range x.Extension {
		switch e.URL {
		case "urn:phivault:decision":
			ev.Allowed = e.ValueCode == "permit"
		case "urn:phivault:break-glass":
			ev.BreakGlass = ev.BreakGlass || e.ValueBoolean
		case "urn:phivault:policy":
			if e.ValueString == breakGlassPolicy {
				ev.BreakGlass = true
			}
		}
	}
	if ev.Interaction == "break-glass" {
		if _, until, ok := strings.Cut(x.OutcomeDesc, " until "); ok {
			ev.Until = until
		}
	}
	return ev, nil
}

func containsStr(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// action maps an audited interaction to the import format's action, or
// false for interactions the rules do not look at (audit and alert
// reads, administration).
func (ev *liveEvent) action() (uint8, bool) {
	in := ev.Interaction
	switch {
	case in == "read" || in == "vread" || strings.HasPrefix(in, "history"):
		return ActRead, true
	case strings.HasPrefix(in, "search") || in == "everything": // Patient/$everything: a search of one chart
		return ActSearch, true
	case in == "create":
		return ActCreate, true
	case in == "update" || in == "patch":
		return ActUpdate, true
	case in == "delete":
		return ActDelete, true
	case strings.Contains(in, "export") && !strings.HasPrefix(in, "audit"):
		return ActExport, true
	case in == "login":
		return ActLogin, true
	case in == "login-failed":
		return ActLoginFailed, true
	case in == "logout":
		return ActLogout, true
	case in == "break-glass":
		return ActBreakGlass, true
	}
	return 0, false
}

// failed tells whether the event was a denial or a failed request.
func (ev *liveEvent) failed() bool { return !ev.Allowed || (ev.Outcome != "" && ev.Outcome != "0") }
