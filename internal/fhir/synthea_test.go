package fhir

import (
	"os"
	"path"
	"strconv"
	"testing"

	"github.com/phivault/phivault/internal/corpus"
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
			if testing.Short() {
				t.Skip("skipping Synthea corpus in -short mode")
			}
			bundles, entries := 0, 0
			corpus.Synthea(t, name, func(file string, data []byte) bool {
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
