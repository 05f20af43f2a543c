// Package corpus gives tests access to the shared test corpora (the
// directory shared/data beside the repository, or PHIVAULT_CORPUS): the
// FHIR R4 examples and the Synthea bundles. A missing corpus skips the
// test with a message, or fails it when CI=true, so that CI cannot pass by
// skipping. It is imported only by tests.
package corpus

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Dir returns the corpus root.
func Dir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("PHIVAULT_CORPUS"); d != "" {
		return need(t, d)
	}
	_, file, _, _ := runtime.Caller(0)
	return need(t, filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "data"))
}

// Path returns a file or directory of the corpus.
func Path(t testing.TB, rel string) string {
	t.Helper()
	return need(t, filepath.Join(Dir(t), rel))
}

// Missing skips the test, or fails it when CI=true.
func Missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing; it is required when CI=true", what)
	}
	t.Skipf("%s is missing; skipping (required when CI=true)", what)
}

func need(t testing.TB, p string) string {
	t.Helper()
	if _, err := os.Stat(p); err != nil {
		Missing(t, "test corpus "+p)
	}
	return p
}

// Examples calls fn with the name and bytes of every JSON file of the
// official R4 examples package, until fn returns false.
func Examples(t testing.TB, fn func(name string, data []byte) bool) {
	t.Helper()
	f, err := os.Open(Path(t, "fhir/hl7.fhir.r4.examples-4.0.1.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	eachTar(t, zr, fn)
}

// Synthea sets.
const (
	SMART     = "synthea/smart-generated-sample-data-R4-synthea.tar.xz"
	DataPipes = "synthea/fhir-data-pipes-synthea-hiv.tar.xz"
)

// Synthea calls fn with every JSON bundle of a Synthea set, until fn
// returns false. It needs the xz command (xz-utils).
func Synthea(t testing.TB, set string, fn func(name string, data []byte) bool) {
	t.Helper()
	archive := Path(t, set)
	xz, err := exec.LookPath("xz")
	if err != nil {
		Missing(t, "the xz command (apt-get install xz-utils)")
	}
	cmd := exec.Command(xz, "-dc", archive)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill() // fn may stop early
		_ = cmd.Wait()
	}()
	eachTar(t, out, fn)
}

// ExtractSynthea unpacks a Synthea set into dir and returns its JSON
// files.
func ExtractSynthea(t testing.TB, set, dir string) []string {
	t.Helper()
	var files []string
	Synthea(t, set, func(name string, data []byte) bool {
		p := filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(path.Clean(name), "/"), "/", "_"))
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
		return true
	})
	return files
}

func eachTar(t testing.TB, r io.Reader, fn func(string, []byte) bool) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(h.Name, ".json") {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if !fn(h.Name, data) {
			return
		}
	}
}
