package fhirapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/corpus"
	"github.com/phivault/phivault/internal/store"
)

// synthea streams the bundles of a Synthea set (internal/corpus) to keep;
// the long corpus tests do not run under -short.
func synthea(t *testing.T, set string, keep func(name string, data []byte) bool) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the Synthea corpus in -short mode")
	}
	corpus.Synthea(t, set, func(name string, data []byte) bool { return keep(filepath.Base(name), data) })
}

// postBundle posts a raw bundle and requires every entry to succeed.
func (env *testEnv) postBundle(name string, data []byte) {
	env.t.Helper()
	var in struct {
		Entry []json.RawMessage `json:"entry"`
	}
	if err := json.Unmarshal(data, &in); err != nil {
		env.t.Fatalf("%s: %v", name, err)
	}
	st, b := env.do("POST", "/fhir", data, "Prefer", "return=minimal")
	if st != http.StatusOK {
		env.t.Fatalf("%s: %d %v", name, st, b)
	}
	_, rs := entries(env.t, b)
	if len(rs) != len(in.Entry) {
		env.t.Fatalf("%s: %d response entries for %d request entries", name, len(rs), len(in.Entry))
	}
	for i, r := range rs {
		if s, _ := r["status"].(string); s != "200 OK" && s != "201 Created" {
			env.t.Errorf("%s: entry %d: %v %v", name, i, s, r["outcome"])
		}
	}
	env.t.Logf("%s: %d entries", name, len(rs))
}

func TestSyntheaSmartTransaction(t *testing.T) {
	env := newTestEnv(t)
	n := 0
	synthea(t, corpus.SMART, func(name string, data []byte) bool {
		env.postBundle(name, data)
		n++
		return false
	})
	if n == 0 {
		t.Fatal("no bundle in the archive")
	}
	env.requireResolved()
}

// TestSyntheaConditionalTransaction loads the fhir-data-pipes batches of
// organizations, locations and practitioners (conditional creates), then
// a patient transaction whose conditional references resolve to them.
func TestSyntheaConditionalTransaction(t *testing.T) {
	env := newTestEnv(t)
	var hospital, practitioners, patient []byte
	var patientName string
	synthea(t, corpus.DataPipes, func(name string, data []byte) bool {
		switch {
		case strings.HasPrefix(name, "hospitalInformation"):
			hospital = data
		case strings.HasPrefix(name, "practitionerInformation"):
			practitioners = data
		case patient == nil && strings.Count(name, "_") >= 2:
			patient, patientName = data, name
		}
		return hospital == nil || practitioners == nil || patient == nil
	})
	if hospital == nil || practitioners == nil || patient == nil {
		t.Fatal("the archive lacks the hospital, practitioner or patient bundles")
	}
	env.postBundle("hospitalInformation", hospital)
	env.postBundle("practitionerInformation", practitioners)
	env.postBundle(patientName, patient)
	env.requireResolved()
}

// requireResolved fails if any stored resource still holds a urn: or
// conditional reference.
func (env *testEnv) requireResolved() {
	env.t.Helper()
	es, err := env.api.Records.History(context.Background(), store.HistoryQuery{})
	if err != nil {
		env.t.Fatal(err)
	}
	for _, e := range es {
		if bytes.Contains(e.Body, []byte(`"reference":"urn:`)) || bytes.Contains(e.Body, []byte(`?identifier=`)) {
			env.t.Errorf("%s/%s holds an unresolved reference", e.Type, e.ID)
		}
	}
	env.t.Logf("%d versions stored, all references resolved", len(es))
}
