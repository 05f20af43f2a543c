package audit

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/phivault/phivault/internal/jsonscan"
)

// checkLeaf reports whether leaf is a FHIR AuditEvent as Event.Leaf writes
// it: one valid JSON object (RFC 8259, as encoding/json accepts it) with
// resourceType "AuditEvent", a type with a code, at least one agent, a
// recorded time in RFC 3339, and a valid action and outcome when present.
//
// It scans the leaf once with jsonscan, because verify calls it
// for every leaf of the log: json.Unmarshal into a struct cost three
// quarters of verify's CPU. It is no more lenient than json.Unmarshal into
// the fields it checks (FuzzCheckLeaf) and stricter in one way: member
// names must match exactly, where encoding/json also takes case variants.
func checkLeaf(leaf []byte) error {
	s := jsonscan.New(leaf)
	var ev struct {
		resourceType, recorded, action, outcome string
		typeCode                                string
		hasType                                 bool
		agents                                  int
	}
	// str reads a string or null (as ""); any other value is an error, as
	// it is for json.Unmarshal into a string field.
	str := func(dst *string) error {
		switch s.Next() {
		case '"':
			v, err := s.Str()
			*dst = string(v)
			return err
		case 'n':
			*dst = ""
			return s.Null()
		}
		return jsonscan.ErrSyntax
	}
	err := jsonscan.ErrSyntax
	if s.Next() == '{' {
		err = s.Object(func(key []byte) error {
			switch string(key) {
			case "resourceType":
				return str(&ev.resourceType)
			case "recorded":
				return str(&ev.recorded)
			case "action":
				return str(&ev.action)
			case "outcome":
				return str(&ev.outcome)
			case "type":
				ev.hasType, ev.typeCode = false, ""
				switch s.Next() {
				case 'n':
					return s.Null()
				case '{':
					ev.hasType = true
					return s.Object(func(key []byte) error {
						if string(key) == "code" {
							return str(&ev.typeCode)
						}
						if err := caseVariant(key, "code"); err != nil {
							return err
						}
						return s.Skip()
					})
				}
				return jsonscan.ErrSyntax
			case "agent":
				ev.agents = 0
				switch s.Next() {
				case 'n':
					return s.Null()
				case '[':
					return s.Array(func() error { ev.agents++; return s.Skip() })
				}
				return jsonscan.ErrSyntax
			}
			if err := caseVariant(key, "resourceType", "recorded", "action", "outcome", "type", "agent"); err != nil {
				return err
			}
			return s.Skip()
		})
	}
	if err == nil && !s.End() {
		err = jsonscan.ErrSyntax
	}
	if err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	switch {
	case ev.resourceType != "AuditEvent":
		return fmt.Errorf("resourceType %q, want AuditEvent", ev.resourceType)
	case !ev.hasType || ev.typeCode == "":
		return errors.New("no type")
	case ev.agents == 0:
		return errors.New("no agent")
	}
	if _, err := time.Parse(time.RFC3339Nano, ev.recorded); err != nil {
		return fmt.Errorf("bad recorded time %q", ev.recorded)
	}
	switch ev.action {
	case "C", "R", "U", "D", "E", "": // 0..1 in FHIR R4
	default:
		return fmt.Errorf("bad action %q", ev.action)
	}
	switch ev.outcome {
	case Success, MinorFailure, SeriousFail, "12", "":
	default:
		return fmt.Errorf("bad outcome %q", ev.outcome)
	}
	return nil
}

// caseVariant rejects a member name that differs from one of names only
// in case: encoding/json would take it for that member, this check would
// not, and the two must not disagree in the lenient direction.
func caseVariant(key []byte, names ...string) error {
	for _, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return fmt.Errorf("member %q differs from %q in case", key, n)
		}
	}
	return nil
}
