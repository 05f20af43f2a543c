package fhir

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/corpus"
)

// sharedData returns the path of a file in the shared test corpus
// (internal/corpus: skipped when absent, a failure when CI=true).
func sharedData(t testing.TB, rel string) string { return corpus.Path(t, rel) }

// definitionTypes are conformance and definition resources, which are not examples of
// patient or administrative data and are left out of the example test.
var definitionTypes = map[string]bool{
	"StructureDefinition": true, "ValueSet": true, "CodeSystem": true, "SearchParameter": true,
	"CapabilityStatement": true, "OperationDefinition": true, "CompartmentDefinition": true,
	"ImplementationGuide": true, "ConceptMap": true, "NamingSystem": true, "StructureMap": true,
	"GraphDefinition": true, "MessageDefinition": true, "TerminologyCapabilities": true,
	"ExampleScenario": true,
}

// exampleFile is one JSON file of the R4 package.
type exampleFile struct {
	name string
	data []byte
}

// readExamples returns the clinical and administrative examples of the R4 package: every
// package/*.json resource except definitions and Bundles that hold only definitions.
func readExamples(t testing.TB) []exampleFile {
	t.Helper()
	f, err := os.Open(sharedData(t, "fhir/hl7.fhir.r4.examples-4.0.1.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []exampleFile
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		base := path.Base(h.Name)
		typ, _, ok := strings.Cut(base, "-")
		if !ok || !strings.HasSuffix(base, ".json") || definitionTypes[typ] || !IsResourceType(typ) {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if typ == "Bundle" && definitionBundle(data) {
			continue
		}
		out = append(out, exampleFile{base, data})
	}
	return out
}

// definitionBundle reports whether every entry of a Bundle is a definition resource.
func definitionBundle(data []byte) bool {
	r, err := Parse(data)
	if err != nil {
		return false
	}
	entries, _ := r["entry"].([]any)
	if len(entries) == 0 {
		return false
	}
	for _, e := range entries {
		m, _ := e.(map[string]any)
		res, _ := m["resource"].(map[string]any)
		if !definitionTypes[Resource(res).Type()] {
			return false
		}
	}
	return true
}

// TestExamples parses and validates every clinical and administrative example of the R4
// package. The examples listed in testdata/invalid-examples.txt must fail with exactly the
// listed issues; every other example must be valid.
func TestExamples(t *testing.T) {
	examples := readExamples(t)
	if len(examples) < 600 {
		t.Fatalf("found only %d examples in the R4 package", len(examples))
	}
	want := readInvalidExamples(t)
	got := map[string]bool{}
	for _, ex := range examples {
		r, err := Parse(ex.data)
		if err != nil {
			t.Errorf("%s: parse: %v", ex.name, err)
			continue
		}
		for _, is := range Validate(r) {
			got[strings.Join([]string{ex.name, is.Location, is.Code, is.Message}, " | ")] = true
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("unexpected issue: %s", k)
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("listed in testdata/invalid-examples.txt but not reported: %s", k)
		}
	}
	t.Logf("%d examples, %d expected issues", len(examples), len(want))
}

func readInvalidExamples(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "invalid-examples.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, " | ")
		if len(fields) != 4 {
			t.Fatalf("invalid-examples.txt:%d: want 4 fields separated by ' | '", i+1)
		}
		want[line] = true
	}
	return want
}

// TestExamplesReachEveryObject proves that validation descends into every object of every
// example: an unknown element planted in each object must be reported exactly once there.
func TestExamplesReachEveryObject(t *testing.T) {
	for _, ex := range readExamples(t) {
		r, err := Parse(ex.data)
		if err != nil {
			t.Fatalf("%s: %v", ex.name, err)
		}
		before := len(Validate(r))
		planted := plantUnknown(map[string]any(r))
		n := 0
		for _, is := range Validate(r) {
			if strings.HasSuffix(is.Location, ".zzPlanted") && is.Message == "unknown element" {
				n++
			}
		}
		if n != planted {
			t.Errorf("%s: planted %d unknown elements, %d reported (%d issues before)", ex.name, planted, n, before)
		}
	}
}

func plantUnknown(v any) int {
	n := 0
	switch v := v.(type) {
	case map[string]any:
		for _, c := range v {
			n += plantUnknown(c)
		}
		v["zzPlanted"] = true
		n++
	case []any:
		for _, c := range v {
			n += plantUnknown(c)
		}
	}
	return n
}
