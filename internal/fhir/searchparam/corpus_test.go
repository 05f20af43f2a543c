package searchparam

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// examples returns the example resources of the official R4 package
// (conformance resources excluded), skipping when the shared corpus is
// absent and failing under CI=true.
func examples(t testing.TB) map[string]map[string]any {
	p := filepath.Join("..", "..", "..", "..", "shared", "data", "fhir", "hl7.fhir.r4.examples-4.0.1.tgz")
	if dir := os.Getenv("PHIVAULT_FHIR_DATA"); dir != "" {
		p = filepath.Join(dir, "hl7.fhir.r4.examples-4.0.1.tgz")
	}
	f, err := os.Open(p)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("test corpus %s is required in CI: %v", p, err)
		}
		t.Skipf("test corpus %s not present (set PHIVAULT_FHIR_DATA); skipping", p)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(h.Name)
		rt, _, _ := strings.Cut(name, "-")
		if !strings.HasSuffix(name, ".json") || conformance[rt] {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, ok := m["resourceType"].(string); ok {
			out[name] = m
		}
	}
}

var conformance = map[string]bool{"SearchParameter": true, "StructureDefinition": true, "ValueSet": true,
	"CodeSystem": true, "ConceptMap": true, "CompartmentDefinition": true, "CapabilityStatement": true,
	"OperationDefinition": true, "NamingSystem": true, "ImplementationGuide": true, "StructureMap": true,
	"GraphDefinition": true, "MessageDefinition": true, "TerminologyCapabilities": true, "package.json": true,
	".index.json": true}

func TestExtractAllExamples(t *testing.T) {
	ex := examples(t)
	r := R4()
	total := 0
	for name, res := range ex {
		vs, err := r.Extract(res)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		total += len(vs)
	}
	t.Logf("%d example resources, %d values", len(ex), total)
	if len(ex) < 600 {
		t.Errorf("only %d examples", len(ex))
	}

	pat := mustExtract(t, r, ex["Patient-example.json"])
	if got := values(pat, "family"); len(got) == 0 || got[0].Text != "Chalmers" {
		t.Errorf("Patient/example family = %+v", got)
	}
	bd := values(pat, "birthdate")
	if len(bd) != 1 || !bd[0].Low.Equal(time.Date(1974, 12, 25, 0, 0, 0, 0, time.UTC)) ||
		!bd[0].High.Equal(time.Date(1974, 12, 26, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)) {
		t.Errorf("Patient/example birthdate = %+v", bd)
	}
	obs := mustExtract(t, r, ex["Observation-example.json"])
	if got := values(obs, "code"); len(got) == 0 || got[0].System != "http://loinc.org" || got[0].Code != "29463-7" {
		t.Errorf("Observation/example code = %+v", got)
	}
	if got := values(obs, "subject"); len(got) != 1 || got[0].Ref.Key() != "Patient/example" {
		t.Errorf("Observation/example subject = %+v", got)
	}
	if got := values(obs, "patient"); len(got) != 1 || got[0].Ref.Key() != "Patient/example" {
		t.Errorf("Observation/example patient = %+v", got)
	}
}

func mustExtract(t *testing.T, r *Registry, res map[string]any) []Value {
	t.Helper()
	if res == nil {
		t.Fatal("example missing from corpus")
	}
	vs, err := r.Extract(res)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}
