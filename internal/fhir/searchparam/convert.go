package searchparam

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/phivault/phivault/internal/fhir/fhirpath"
)

// convert appends the values of one selected element for a parameter of
// type t, per the FHIR search type mapping. Unfit shapes yield nothing.
func convert(out []Value, code string, t Type, it fhirpath.Item) []Value {
	it = unwrapExtension(it)
	base := Value{Param: code, Type: t}
	switch t {
	case String:
		return stringValues(out, base, it.Value)
	case URI:
		if s, ok := it.Value.(string); ok {
			base.Text = s
			return append(out, base)
		}
	case Token:
		return tokenValues(out, base, it)
	case Reference:
		if ref, ok := reference(it.Value); ok {
			base.Ref = ref
			return append(out, base)
		}
	case Date:
		return dateValues(out, base, it.Value)
	case Number:
		if n, ok := number(it.Value); ok {
			base.Number, base.Float = n, parseFloat(n)
			return append(out, base)
		}
	case Quantity:
		m, ok := it.Value.(map[string]any)
		if !ok {
			return out
		}
		n, ok := number(m["value"])
		if !ok {
			return out
		}
		base.Number, base.Float = n, parseFloat(n)
		base.System, base.Code, base.Unit = str(m, "system"), str(m, "code"), str(m, "unit")
		if cur := str(m, "currency"); cur != "" { // Money
			base.System, base.Code = "urn:iso:std:iso:4217", cur
		}
		return append(out, base)
	}
	return out
}

// unwrapExtension replaces an Extension by its value[x].
func unwrapExtension(it fhirpath.Item) fhirpath.Item {
	m, ok := it.Value.(map[string]any)
	if !ok || (it.Type != "Extension" && m["url"] == nil) {
		return it
	}
	for k, v := range m {
		if rest, ok := strings.CutPrefix(k, "value"); ok && rest != "" {
			t := rest
			if isPrimitive(t) {
				t = strings.ToLower(t[:1]) + t[1:]
			}
			return fhirpath.Item{Value: v, Type: t}
		}
	}
	return it
}

func isPrimitive(t string) bool {
	switch t {
	case "Base64Binary", "Boolean", "Canonical", "Code", "Date", "DateTime", "Decimal", "Id", "Instant",
		"Integer", "Markdown", "Oid", "PositiveInt", "String", "Time", "UnsignedInt", "Uri", "Url", "Uuid":
		return true
	}
	return false
}

// stringValues indexes a string, or each string part of a HumanName,
// Address or other element (its direct string and string-list children).
func stringValues(out []Value, base Value, v any) []Value {
	switch x := v.(type) {
	case string:
		base.Text = x
		return append(out, base)
	case map[string]any:
		for _, k := range []string{"text", "family", "given", "prefix", "suffix", "line", "city", "district", "state", "postalCode", "country", "value", "display", "name"} {
			switch f := x[k].(type) {
			case string:
				base.Text = f
				out = append(out, base)
			case []any:
				for _, e := range f {
					if s, ok := e.(string); ok {
						base.Text = s
						out = append(out, base)
					}
				}
			}
		}
	}
	return out
}

var contactSystems = map[string]bool{"phone": true, "fax": true, "email": true, "pager": true, "url": true, "sms": true, "other": true}

func tokenValues(out []Value, base Value, it fhirpath.Item) []Value {
	switch x := it.Value.(type) {
	case bool:
		base.Code = strconv.FormatBool(x)
		return append(out, base)
	case string:
		base.Code = x
		return append(out, base)
	case json.Number:
		base.Code = string(x)
		return append(out, base)
	case map[string]any:
		switch kind := tokenShape(it.Type, x); kind {
		case "CodeableConcept":
			base.Text = str(x, "text")
			codings, _ := x["coding"].([]any)
			for _, c := range codings {
				if cm, ok := c.(map[string]any); ok {
					v := base
					v.System, v.Code, v.Display = str(cm, "system"), str(cm, "code"), str(cm, "display")
					out = append(out, v)
				}
			}
			if len(codings) == 0 && base.Text != "" {
				out = append(out, base)
			}
		case "Coding":
			base.System, base.Code, base.Display = str(x, "system"), str(x, "code"), str(x, "display")
			out = append(out, base)
		case "Identifier":
			base.System, base.Code = str(x, "system"), str(x, "value")
			if tp, ok := x["type"].(map[string]any); ok {
				base.Text = str(tp, "text")
				if cs, ok := tp["coding"].([]any); ok && len(cs) > 0 {
					if cm, ok := cs[0].(map[string]any); ok {
						base.TypeSystem, base.TypeCode = str(cm, "system"), str(cm, "code")
					}
				}
			}
			out = append(out, base)
		case "ContactPoint":
			base.Code = str(x, "value")
			out = append(out, base)
		}
	}
	return out
}

// tokenShape names the token-bearing data type of a JSON object, from the
// known type or else from its shape.
func tokenShape(typ string, m map[string]any) string {
	switch typ {
	case "CodeableConcept", "Coding", "Identifier", "ContactPoint":
		return typ
	}
	if _, ok := m["coding"]; ok {
		return "CodeableConcept"
	}
	if _, ok := m["value"].(string); ok {
		if s, _ := m["system"].(string); contactSystems[s] || m["rank"] != nil {
			return "ContactPoint"
		}
		return "Identifier"
	}
	if m["code"] != nil || m["system"] != nil {
		return "Coding"
	}
	if m["text"] != nil {
		return "CodeableConcept"
	}
	return ""
}

// reference normalizes a Reference, a canonical/uri string, or a resource.
func reference(v any) (Ref, bool) {
	switch x := v.(type) {
	case string:
		ref := Ref{Raw: x}
		canon, ver, hasVer := strings.Cut(x, "|")
		if hasVer || strings.Contains(x, "://") {
			ref.Canonical, ref.Version = canon, ver
		}
		fillRef(&ref, canon)
		return ref, true
	case map[string]any:
		if rt := str(x, "resourceType"); rt != "" { // Bundle.entry[0].resource
			return Ref{Type: rt, ID: str(x, "id")}, true
		}
		ref := Ref{Raw: str(x, "reference")}
		fillRef(&ref, ref.Raw)
		if ref.Type == "" {
			ref.Type = str(x, "type")
		}
		if id, ok := x["identifier"].(map[string]any); ok {
			ref.IdentifierSystem, ref.IdentifierValue = str(id, "system"), str(id, "value")
		}
		return ref, ref.Raw != "" || ref.IdentifierValue != ""
	}
	return Ref{}, false
}

func fillRef(ref *Ref, s string) {
	t, id, ok := fhirpath.ParseReference(s)
	if !ok {
		return
	}
	ref.Type, ref.ID = t, id
	if i := strings.Index(s, "/_history/"); i >= 0 {
		ref.Version = s[i+len("/_history/"):]
	}
	if strings.Contains(s, "://") {
		if i := strings.LastIndex(s, "/"+t+"/"+id); i >= 0 {
			ref.Base = s[:i]
		}
	}
}

func dateValues(out []Value, base Value, v any) []Value {
	switch x := v.(type) {
	case string:
		low, high, p, err := ParseDate(x)
		if err == nil {
			base.Low, base.High, base.Precision = low, high, p
			out = append(out, base)
		}
	case map[string]any:
		if events, ok := x["event"].([]any); ok { // Timing
			for _, e := range events {
				out = dateValues(out, base, e)
			}
			return out
		}
		start, hasS := x["start"].(string)
		end, hasE := x["end"].(string)
		if !hasS && !hasE {
			return out
		}
		base.Low, base.High = MinTime, MaxTime
		if hasS {
			low, _, _, err := ParseDate(start)
			if err != nil {
				return out
			}
			base.Low = low
		}
		if hasE {
			_, high, _, err := ParseDate(end)
			if err != nil {
				return out
			}
			base.High = high
		}
		out = append(out, base)
	}
	return out
}

func number(v any) (string, bool) {
	switch x := v.(type) {
	case json.Number:
		return string(x), true
	case fhirpath.Decimal:
		return x.String(), true
	case int64:
		return strconv.FormatInt(x, 10), true
	}
	return "", false
}

func parseFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}
