package fhir

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestSpecTable(t *testing.T) {
	if len(specR4) > 300<<10 {
		t.Errorf("embedded spec table is %d bytes; keep it under 300 KiB", len(specR4))
	}
	s := loadSpec()
	var resources, complexTypes, primitives int
	for _, td := range s.types {
		switch {
		case td.kind == kindResource && !td.abstract:
			resources++
		case td.kind == kindComplex && td.name[0] >= 'A' && td.name[0] <= 'Z' && !bytes.ContainsRune([]byte(td.name), '.'):
			complexTypes++
		case td.kind == kindPrimitive:
			primitives++
		}
	}
	// R4 has 146 concrete resource types and 20 primitive types (xhtml included).
	if resources != 146 || primitives != 20 || complexTypes < 35 {
		t.Errorf("spec has %d resources, %d complex types, %d primitives", resources, complexTypes, primitives)
	}
	checks := []struct {
		typ, elem, elemType string
		min, max            int
	}{
		{"Observation", "valueQuantity", "Quantity", 0, 1},
		{"Observation", "status", "code", 1, 1},
		{"Patient", "name", "HumanName", 0, -1},
		{"Patient", "id", "id", 0, 1},
		{"Patient", "contact", "Patient.contact", 0, -1},
		{"Questionnaire.item", "item", "Questionnaire.item", 0, -1}, // contentReference
		{"Parameters.parameter", "part", "Parameters.parameter", 0, -1},
		{"Extension", "url", "uri", 1, 1},
		{"Extension", "valueReference", "Reference", 0, 1},
		{"date", "extension", "Extension", 0, -1},
		{"Bundle.entry", "resource", "Resource", 0, 1},
	}
	for _, c := range checks {
		var owner *typeDef
		if td := s.types[c.typ]; td != nil {
			owner = td
		} else {
			// backbone element: find it through its parent
			dir, base := filepath.Ext(c.typ), c.typ[:len(c.typ)-len(filepath.Ext(c.typ))]
			if p := s.types[base]; p != nil && p.elems[dir[1:]] != nil {
				owner = p.elems[dir[1:]].typ
			}
		}
		if owner == nil {
			t.Errorf("no type %s", c.typ)
			continue
		}
		e := owner.elems[c.elem]
		if e == nil {
			t.Errorf("%s has no element %s", c.typ, c.elem)
			continue
		}
		if e.typ.name != c.elemType || e.min != c.min || e.max != c.max {
			t.Errorf("%s.%s = %s %d..%d, want %s %d..%d", c.typ, c.elem, e.typ.name, e.min, e.max, c.elemType, c.min, c.max)
		}
	}
	// Every code of the resource-types value set but the two abstract ones is a resource.
	var resourceTypes *valueSet
	for _, td := range s.types {
		for _, e := range td.elems {
			if e.vs != nil && e.vs.url == "http://hl7.org/fhir/ValueSet/resource-types" {
				resourceTypes = e.vs
			}
		}
	}
	if resourceTypes == nil {
		t.Fatal("resource-types value set not expanded")
	}
	for code := range resourceTypes.codes {
		if IsResourceType(code) == (code == "Resource" || code == "DomainResource") {
			t.Errorf("IsResourceType(%q) disagrees with the resource-types value set", code)
		}
	}
	if len(resourceTypes.codes) != resources+2 {
		t.Errorf("resource-types has %d codes, spec %d concrete resources", len(resourceTypes.codes), resources)
	}
	if e := s.types["Patient"].elems["gender"]; e.vs == nil || len(e.vs.codes) != 4 {
		t.Errorf("Patient.gender binding not expanded: %+v", e.vs)
	}
}

// TestSpecTableUpToDate regenerates the table from the R4 package and checks that the
// committed spec_r4.json.gz is exactly what the generator produces.
func TestSpecTableUpToDate(t *testing.T) {
	tgz, err := filepath.Abs(sharedData(t, "fhir/hl7.fhir.r4.examples-4.0.1.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	if testing.Short() {
		t.Skip("skipping generator run in -short mode")
	}
	out := filepath.Join(t.TempDir(), "spec.json.gz")
	cmd := exec.Command("go", "run", "./internal/specgen", "-in", tgz, "-out", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("specgen: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, specR4) {
		t.Error("spec_r4.json.gz is stale: run go generate ./internal/fhir")
	}
}
