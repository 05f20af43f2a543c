package audit

import (
	"time"
	"unicode/utf8"
)

// Leaf returns the bytes appended to the log for e: its AuditEvent as
// compact JSON, byte for byte what encoding/json writes for AuditEvent()
// with HTML escaping off (object keys sorted, no trailing newline).
//
// It is written by hand because every audited request pays for it: the
// reflective encoding of nested maps cost about a tenth of a FHIR read's
// CPU. TestLeafMatchesEncodingJSON and FuzzLeaf hold it to AuditEvent().
// Keys below appear in sorted order; keep them so when adding one.
func (e *Event) Leaf() []byte {
	b := make([]byte, 0, e.leafSize())
	b = append(b, `{"action":`...)
	b = appendString(b, e.Action)
	b = append(b, `,"agent":[{`...)
	if e.SourceIP != "" {
		b = append(b, `"network":{"address":`...)
		b = appendString(b, e.SourceIP)
		b = append(b, `,"type":"2"},`...)
	}
	if e.Purpose != "" {
		b = append(b, `"purposeOfUse":[{"coding":[{"code":`...)
		b = appendString(b, e.Purpose)
		b = append(b, `,"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason"}]}],`...)
	}
	b = append(b, `"requestor":true,`...)
	if len(e.Roles) > 0 {
		b = append(b, `"role":[`...)
		for i, r := range e.Roles {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"coding":[{"code":`...)
			b = appendString(b, r)
			b = append(b, `,"system":"urn:phivault:role"}]}`...)
		}
		b = append(b, "],"...)
	}
	b = append(b, `"type":{"coding":[{"code":"humanuser","system":"http://terminology.hl7.org/CodeSystem/extra-security-role-type"}]},"who":{"identifier":{"system":"urn:phivault:user","value":`...)
	b = appendString(b, e.UserID)
	b = append(b, "}}}"...)
	if e.ClientID != "" {
		b = append(b, `,{"requestor":false,"type":{"coding":[{"code":"110150","display":"Application","system":"http://dicom.nema.org/resources/ontology/DCM"}]},"who":{"identifier":{"system":"urn:phivault:client","value":`...)
		b = appendString(b, e.ClientID)
		b = append(b, "}}}"...)
	}
	b = append(b, ']')
	if len(e.Patients)+len(e.Entities) > 0 || e.Query != "" {
		b = append(b, `,"entity":[`...)
		first := true
		sep := func() {
			if !first {
				b = append(b, ',')
			}
			first = false
		}
		for _, p := range e.Patients {
			sep()
			b = append(b, `{"role":{"code":"1","system":"http://terminology.hl7.org/CodeSystem/object-role"},"type":{"code":"1","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"},"what":{"reference":"Patient/`...)
			b = appendStringBody(b, p)
			b = append(b, `"}}`...)
		}
		for _, r := range e.Entities {
			sep()
			b = append(b, `{"type":{"code":"2","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"},"what":{"reference":`...)
			b = appendString(b, r)
			b = append(b, "}}"...)
		}
		if e.Query != "" {
			sep()
			b = append(b, `{"description":"query (keyed hash)","name":`...)
			b = appendString(b, e.Query)
			b = append(b, `,"role":{"code":"24","system":"http://terminology.hl7.org/CodeSystem/object-role"},"type":{"code":"2","system":"http://terminology.hl7.org/CodeSystem/audit-entity-type"}}`...)
		}
		b = append(b, ']')
	}
	b = append(b, `,"extension":[{"url":"urn:phivault:decision","valueCode":`...)
	if e.Allowed {
		b = append(b, `"permit"}`...)
	} else {
		b = append(b, `"deny"}`...)
	}
	for _, p := range e.Policies {
		b = append(b, `,{"url":"urn:phivault:policy","valueString":`...)
		b = appendString(b, p)
		b = append(b, '}')
	}
	if e.BreakGlass {
		b = append(b, `,{"url":"urn:phivault:break-glass","valueBoolean":true}`...)
	}
	if e.UserAgent != "" {
		b = append(b, `,{"url":"urn:phivault:user-agent","valueString":`...)
		b = appendString(b, e.UserAgent)
		b = append(b, '}')
	}
	if e.AuthMethod != "" {
		b = append(b, `,{"url":"urn:phivault:auth-method","valueString":`...)
		b = appendString(b, e.AuthMethod)
		b = append(b, '}')
	}
	b = append(b, `],"outcome":`...)
	b = appendString(b, e.Outcome)
	if e.OutcomeDesc != "" {
		b = append(b, `,"outcomeDesc":`...)
		b = appendString(b, e.OutcomeDesc)
	}
	b = append(b, `,"recorded":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","resourceType":"AuditEvent","source":{"observer":{"display":"phivault"},"type":[{"code":"4","display":"Application Server","system":"http://terminology.hl7.org/CodeSystem/security-source-type"}]},"subtype":[{"code":`...)
	b = appendString(b, e.Interaction)
	b = append(b, `,"system":"http://hl7.org/fhir/restful-interaction"}],"type":`...)
	if e.Interaction == "login" || e.Interaction == "logout" || e.Interaction == "login-failed" {
		b = append(b, `{"code":"110114","display":"User Authentication","system":"http://dicom.nema.org/resources/ontology/DCM"}}`...)
	} else {
		b = append(b, `{"code":"rest","display":"RESTful Operation","system":"http://terminology.hl7.org/CodeSystem/audit-event-type"}}`...)
	}
	return b
}

// leafSize is about the length of e's leaf, a little more when nothing
// needs escaping, so that Leaf allocates once: the fixed text is about
// 1.3 KB, a patient entity 230 bytes, a resource entity 110 and its
// reference.
func (e *Event) leafSize() int {
	n := 1600 + len(e.UserID) + len(e.ClientID) + len(e.UserAgent) + len(e.Query) + len(e.OutcomeDesc) + 230*len(e.Patients) + 64*len(e.Roles) + 48*len(e.Policies)
	for _, p := range e.Patients {
		n += len(p)
	}
	for _, r := range e.Entities {
		n += 112 + len(r)
	}
	for _, p := range e.Policies {
		n += len(p)
	}
	return n
}

// appendString appends s as a JSON string the way encoding/json does with
// HTML escaping off: quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendStringBody(b, s)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendStringBody is appendString without the quotes.
func appendStringBody(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
