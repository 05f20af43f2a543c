package fhirpath

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// corpusDir is the shared test corpus (see ../shared/data/README.md); it
// is not part of the repository.
var corpusDir = filepath.Join("..", "..", "..", "..", "shared", "data", "fhir")

// needCorpus skips when the shared corpus is absent, or fails under CI=true.
func needCorpus(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(corpusDir, rel)
	if dir := os.Getenv("PHIVAULT_FHIR_DATA"); dir != "" {
		p = filepath.Join(dir, rel)
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("test corpus %s is required in CI: %v", p, err)
		}
		t.Skipf("test corpus %s not present (set PHIVAULT_FHIR_DATA); skipping", p)
	}
	return p
}

var (
	pkgOnce  sync.Once
	pkgFiles map[string][]byte
	pkgErr   error
)

// packageFiles returns the JSON files of the official R4 examples package
// by base name.
func packageFiles(t testing.TB) map[string][]byte {
	p := needCorpus(t, "hl7.fhir.r4.examples-4.0.1.tgz")
	pkgOnce.Do(func() {
		pkgFiles = map[string][]byte{}
		f, err := os.Open(p)
		if err != nil {
			pkgErr = err
			return
		}
		defer f.Close()
		gz, err := gzip.NewReader(f)
		if err != nil {
			pkgErr = err
			return
		}
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				pkgErr = err
				return
			}
			if !strings.HasSuffix(h.Name, ".json") {
				continue
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				pkgErr = err
				return
			}
			pkgFiles[filepath.Base(h.Name)] = b
		}
	})
	if pkgErr != nil {
		t.Fatal(pkgErr)
	}
	return pkgFiles
}

func decodeBytes(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	return m, d.Decode(&m)
}

// TestSearchParameterExpressions parses every expression of the R4
// SearchParameter definitions and evaluates each on every example of its
// base types.
func TestSearchParameterExpressions(t *testing.T) {
	files := packageFiles(t)
	byType := map[string][]map[string]any{}
	var params []map[string]any
	for name, b := range files {
		m, err := decodeBytes(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rt, _ := m["resourceType"].(string)
		if rt == "SearchParameter" {
			params = append(params, m)
		}
		byType[rt] = append(byType[rt], m)
	}
	if len(params) < 1300 {
		t.Fatalf("found %d SearchParameters, want ~1400", len(params))
	}
	parsed, evals := 0, 0
	for _, sp := range params {
		src, _ := sp["expression"].(string)
		if src == "" {
			continue
		}
		e, err := Parse(src)
		if err != nil {
			t.Errorf("%v: Parse(%q): %v", sp["id"], src, err)
			continue
		}
		parsed++
		bases, _ := sp["base"].([]any)
		for _, b := range bases {
			var res []map[string]any
			if b == "Resource" || b == "DomainResource" {
				for _, rs := range byType {
					res = append(res, rs...)
				}
			} else {
				res = byType[b.(string)]
			}
			for _, r := range res {
				if _, err := e.Evaluate(r, nil); err != nil {
					t.Errorf("%v on %v/%v: %v", sp["id"], r["resourceType"], r["id"], err)
				}
				evals++
			}
		}
	}
	t.Logf("parsed %d expressions, %d evaluations", parsed, evals)
}
