package search

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// r4Def is one official R4 SearchParameter, read straight from the HL7
// package (not from the table the server embeds).
type r4Def struct {
	URL          string
	Code         string
	Type         string
	Base         []string
	Target       []string
	Expression   string
	Experimental bool
	Component    []struct{ Definition string }
}

var (
	r4DefsOnce sync.Once
	r4Defs     []r4Def
	r4DefsErr  error
)

// officialDefs returns every SearchParameter of hl7.fhir.r4.examples
// 4.0.1, skipping when the shared corpus is absent (failing under CI=true).
func officialDefs(t *testing.T) []r4Def {
	t.Helper()
	p := filepath.Join("..", "..", "..", "shared", "data", "fhir", "hl7.fhir.r4.examples-4.0.1.tgz")
	if dir := os.Getenv("PHIVAULT_FHIR_DATA"); dir != "" {
		p = filepath.Join(dir, "hl7.fhir.r4.examples-4.0.1.tgz")
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("test corpus %s is required in CI: %v", p, err)
		}
		t.Skipf("test corpus %s not present (set PHIVAULT_FHIR_DATA); skipping", p)
	}
	r4DefsOnce.Do(func() { r4Defs, r4DefsErr = readDefs(p) })
	if r4DefsErr != nil {
		t.Fatal(r4DefsErr)
	}
	return r4Defs
}

func readDefs(p string) ([]r4Def, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	var out []r4Def
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if base := filepath.Base(h.Name); !strings.HasPrefix(base, "SearchParameter-") || !strings.HasSuffix(base, ".json") {
			continue
		}
		var d r4Def
		if err := json.NewDecoder(tr).Decode(&d); err != nil {
			return nil, err
		}
		if strings.HasPrefix(d.URL, "http://hl7.org/fhir/SearchParameter/example") {
			continue // examples of the SearchParameter resource, not definitions
		}
		out = append(out, d)
	}
}

// defsFor indexes the official definitions by resource type and code;
// a definition on Resource or DomainResource applies to every type.
func defsFor(defs []r4Def, typ, code string) []r4Def {
	var out []r4Def
	for _, d := range defs {
		if d.Code == code && (slices.Contains(d.Base, typ) || slices.Contains(d.Base, "Resource") ||
			(slices.Contains(d.Base, "DomainResource") && typ != "Bundle" && typ != "Binary" && typ != "Parameters")) {
			out = append(out, d)
		}
	}
	return out
}
