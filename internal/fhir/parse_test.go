package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseValid(t *testing.T) {
	in := `{"resourceType":"Observation","valueQuantity":{"value":1.50,"unit":"mg"},` +
		`"note":[{"text":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \n"}],"x":[true,false,null,-0.5e+3]}`
	r, err := Parse([]byte(" \n" + in + " \t\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Resource{
		"resourceType":  "Observation",
		"valueQuantity": map[string]any{"value": json.Number("1.50"), "unit": "mg"},
		"note":          []any{map[string]any{"text": "café 😀 \"q\" \\ / \n"}},
		"x":             []any{true, false, nil, json.Number("-0.5e+3")},
	}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("Parse mismatch (-want +got):\n%s", diff)
	}
	if r.Type() != "Observation" {
		t.Errorf("Type() = %q", r.Type())
	}
	// Decimal precision survives re-encoding.
	out, err := json.Marshal(r["valueQuantity"])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"value":1.50`) {
		t.Errorf("re-encoded %s lost decimal precision", out)
	}
}

func TestParseErrors(t *testing.T) {
	deep := `{"resourceType":"Patient","a":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + "}"
	okDeep := `{"resourceType":"Patient","a":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + "}"
	if _, err := Parse([]byte(okDeep)); err != nil {
		t.Errorf("nesting of exactly MaxDepth rejected: %v", err)
	}
	tests := []struct {
		name, in string
		code     string
		loc      string
		msg      string
	}{
		{"empty", ``, CodeStructure, "", "empty document"},
		{"array top", `[{"resourceType":"Patient"}]`, CodeStructure, "", "a resource must be a JSON object"},
		{"string top", `"SECRET"`, CodeStructure, "", "a resource must be a JSON object"},
		{"trailing", `{"resourceType":"Patient"} {}`, CodeStructure, "", "unexpected data after the resource"},
		{"trailing garbage", `{"resourceType":"Patient"}SECRET`, CodeStructure, "", "unexpected data after the resource"},
		{"duplicate key", `{"resourceType":"Patient","name":[{"family":"SECRET","family":"SECRET"}]}`, CodeStructure, "Patient.name[0].family", "duplicate property"},
		{"too deep", deep, CodeStructure, "Patient.a" + strings.Repeat("[0]", MaxDepth-1), "JSON nested too deeply"},
		{"missing resourceType", `{"id":"SECRET"}`, CodeRequired, "resourceType", "missing resourceType"},
		{"non-string resourceType", `{"resourceType":7}`, CodeStructure, "resourceType", "resourceType must be a string"},
		{"unterminated", `{"resourceType":"Patient","name":[{"family":"SECRET`, CodeStructure, "Patient.name[0].family", "unexpected end of JSON in a string"},
		{"bad literal", `{"resourceType":"Patient","active":tru}`, CodeStructure, "Patient.active", "invalid JSON value"},
		{"bad number", `{"resourceType":"Patient","n":01}`, CodeStructure, "Patient", "expected ',' or '}'"},
		{"bad fraction", `{"resourceType":"Patient","n":1.}`, CodeStructure, "Patient.n", "invalid number"},
		{"bad escape", `{"resourceType":"Patient","id":"SECRET\x"}`, CodeStructure, "Patient.id", "invalid string: bad escape"},
		{"lone surrogate", `{"resourceType":"Patient","id":"\ud800SECRET"}`, CodeStructure, "Patient.id", "invalid string: unpaired surrogate"},
		{"control char", "{\"resourceType\":\"Patient\",\"id\":\"SECRET\x01\"}", CodeStructure, "Patient.id", "invalid string: control character"},
		{"invalid utf8", "{\"resourceType\":\"Patient\",\"id\":\"SECRET\xff\"}", CodeStructure, "Patient.id", "invalid string: not UTF-8"},
		{"missing colon", `{"resourceType":"Patient","id" "x"}`, CodeStructure, "Patient", "expected ':' after a property name"},
		{"trailing comma", `{"resourceType":"Patient","id":"x",}`, CodeStructure, "Patient", "expected a property name"},
		{"unquoted key", `{resourceType:"Patient"}`, CodeStructure, "", "expected a property name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded: %v", r)
			}
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not *Error", err)
			}
			got := [3]string{fe.Code, fe.Location, fe.Message}
			if want := [3]string{tt.code, tt.loc, tt.msg}; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error text leaks the input: %v", err)
			}
		})
	}
}

func TestParseManyKeys(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Basic"`)
	for i := range 5000 {
		fmt.Fprintf(&b, `,"k%d":%d`, i, i)
	}
	if _, err := Parse([]byte(b.String() + "}")); err != nil {
		t.Fatalf("many distinct keys: %v", err)
	}
	if _, err := Parse([]byte(b.String() + `,"k4321":1}`)); err == nil || !strings.Contains(err.Error(), "duplicate property") {
		t.Fatalf("late duplicate key not detected: %v", err)
	}
}
