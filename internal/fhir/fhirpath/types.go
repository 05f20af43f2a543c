package fhirpath

import (
	"encoding/json"
	"strings"
)

// FHIR R4 data types that may appear as the suffix of a choice element
// (value[x]); primitives map to their lower-case FHIR name.
var choiceTypes = map[string]string{
	"Base64Binary": "base64Binary", "Boolean": "boolean", "Canonical": "canonical", "Code": "code",
	"Date": "date", "DateTime": "dateTime", "Decimal": "decimal", "Id": "id", "Instant": "instant",
	"Integer": "integer", "Markdown": "markdown", "Oid": "oid", "PositiveInt": "positiveInt",
	"String": "string", "Time": "time", "UnsignedInt": "unsignedInt", "Uri": "uri", "Url": "url",
	"Uuid":    "uuid",
	"Address": "Address", "Age": "Age", "Annotation": "Annotation", "Attachment": "Attachment",
	"CodeableConcept": "CodeableConcept", "Coding": "Coding", "ContactPoint": "ContactPoint",
	"Count": "Count", "Distance": "Distance", "Duration": "Duration", "HumanName": "HumanName",
	"Identifier": "Identifier", "Money": "Money", "Period": "Period", "Quantity": "Quantity",
	"Range": "Range", "Ratio": "Ratio", "Reference": "Reference", "SampledData": "SampledData",
	"Signature": "Signature", "Timing": "Timing", "ContactDetail": "ContactDetail",
	"Contributor": "Contributor", "DataRequirement": "DataRequirement", "Expression": "Expression",
	"ParameterDefinition": "ParameterDefinition", "RelatedArtifact": "RelatedArtifact",
	"TriggerDefinition": "TriggerDefinition", "UsageContext": "UsageContext", "Dosage": "Dosage",
	"Meta": "Meta",
}

func choiceType(suffix string) string {
	if suffix == "" || suffix[0] < 'A' || suffix[0] > 'Z' {
		return ""
	}
	return choiceTypes[suffix]
}

// supertypes lists the FHIR types a type specializes (beyond itself).
var supertypes = map[string][]string{
	"Age": {"Quantity"}, "Count": {"Quantity"}, "Distance": {"Quantity"}, "Duration": {"Quantity"},
	"SimpleQuantity": {"Quantity"}, "MoneyQuantity": {"Quantity"},
	"code": {"string"}, "id": {"string"}, "markdown": {"string"},
	"url": {"uri"}, "canonical": {"uri"}, "oid": {"uri"}, "uuid": {"uri"},
	"positiveInt": {"integer"}, "unsignedInt": {"integer"},
	"Bundle": {"Resource"}, "Binary": {"Resource"}, "Parameters": {"Resource"},
}

// typeOf returns the namespace ("FHIR" or "System") and the type name of an
// item; name is "" when the JSON shape alone cannot tell.
func typeOf(it Item) (ns, name string) {
	if rest, ok := strings.CutPrefix(it.Type, "System."); ok {
		return "System", rest
	}
	if it.Type != "" {
		return "FHIR", it.Type
	}
	switch v := it.Value.(type) {
	case bool:
		return "FHIR", "boolean"
	case string:
		return "FHIR", "string"
	case json.Number:
		if strings.ContainsAny(string(v), ".eE") {
			return "FHIR", "decimal"
		}
		return "FHIR", "integer"
	case int64:
		return "System", "Integer"
	case Decimal:
		return "System", "Decimal"
	case Quantity:
		return "System", "Quantity"
	case Temporal:
		return "System", [...]string{"", "Date", "DateTime", "Time"}[v.Kind]
	}
	return "FHIR", ""
}

// typeMatches reports whether a FHIR type t is, or specializes, want
// (unqualified).
func typeMatches(t, want string) bool {
	if t == want {
		return true
	}
	isResource := t != "" && t[0] >= 'A' && t[0] <= 'Z' && choiceTypes[t] == "" && !isQuantityType(t)
	if isResource && (want == "Resource" || want == "DomainResource") {
		for _, s := range supertypes[t] {
			if s == want {
				return true
			}
		}
		return want == "Resource" || want == "DomainResource"
	}
	for _, s := range supertypes[t] {
		if s == want {
			return true
		}
	}
	return false
}

// isType implements "is": want may be qualified with FHIR. or System.
func isType(it Item, want string) bool {
	ns, name := typeOf(it)
	if name == "" {
		return false
	}
	if q, rest, ok := strings.Cut(want, "."); ok {
		if q != ns {
			return false
		}
		want = rest
	}
	if typeMatches(name, want) {
		return true
	}
	// System types written unqualified also match FHIR primitives written
	// with a capital letter only in the System namespace.
	return false
}

// asType implements "as" and ofType(): the items that are of type want.
func asType(c Collection, want string) Collection {
	var out Collection
	for _, it := range c {
		if isType(it, want) {
			if it.Type == "" {
				if _, n := typeOf(it); n != "" {
					it.Type = n
				}
			}
			out = append(out, it)
		}
	}
	return out
}

// sys wraps a system value with its System type.
func sys(v any) Item {
	t := ""
	switch x := v.(type) {
	case bool:
		t = "Boolean"
	case string:
		t = "String"
	case int64:
		t = "Integer"
	case Decimal:
		t = "Decimal"
	case Quantity:
		t = "Quantity"
	case Temporal:
		t = [...]string{"", "Date", "DateTime", "Time"}[x.Kind]
	default:
		return Item{Value: v}
	}
	return Item{Value: v, Type: "System." + t}
}
