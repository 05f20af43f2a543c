package fhir

import (
	"archive/tar"
	"io"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"testing"
)

// syntheaSample is how many bundles TestSyntheaBundles validates from each archive;
// PHIVAULT_SYNTHEA_BUNDLES overrides it (0 means all).
const syntheaSample = 30

// TestSyntheaBundles validates every entry resource of a sample of the Synthea transaction
// bundles in the shared corpus: real-world generated data that must all be valid R4.
func TestSyntheaBundles(t *testing.T) {
	limit := syntheaSample
	if s := os.Getenv("PHIVAULT_SYNTHEA_BUNDLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("PHIVAULT_SYNTHEA_BUNDLES: %v", err)
		}
		limit = n
	}
	for _, name := range []string{
		"synthea/smart-generated-sample-data-R4-synthea.tar.xz",
		"synthea/fhir-data-pipes-synthea-hiv.tar.xz",
	} {
		t.Run(path.Base(name), func(t *testing.T) {
			archive := sharedData(t, name)
			if testing.Short() {
				t.Skip("skipping Synthea corpus in -short mode")
			}
			bundles, entries := 0, 0
			readTarXZ(t, archive, func(file string, data []byte) bool {
				r, err := Parse(data)
				if err != nil {
					t.Errorf("%s: %v", file, err)
					return true
				}
				if r.Type() != "Bundle" {
					t.Errorf("%s: not a Bundle", file)
					return true
				}
				bundles++
				list, _ := r["entry"].([]any)
				entries += len(list)
				for _, is := range Validate(r) {
					t.Errorf("%s: %v", file, is)
				}
				return limit == 0 || bundles < limit
			})
			if bundles == 0 {
				t.Fatal("no bundles found in the archive")
			}
			t.Logf("validated %d bundles, %d entries", bundles, entries)
		})
	}
}

// readTarXZ streams the .json members of a .tar.xz archive to fn until fn returns false. It
// needs the xz command (xz-utils); without it the test is skipped, or fails under CI=true.
func readTarXZ(t *testing.T, archive string, fn func(name string, data []byte) bool) {
	t.Helper()
	xz, err := exec.LookPath("xz")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("xz is required to read the Synthea corpus (apt-get install xz-utils)")
		}
		t.Skip("xz not installed; skipping the Synthea corpus")
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
		out.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	tr := tar.NewReader(out)
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
