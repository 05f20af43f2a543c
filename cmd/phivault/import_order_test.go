package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Shared reference data (batch bundles, and bundles of organizations or
// practitioners with no patient, like Synthea's hospitalInformation) is
// imported before the patients' bundles that write the same resources.
func TestImportOrderSharedFirst(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a-patient.json":  `{"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Patient"}}, {"resource": {"resourceType": "Organization"}}]}`,
		"b-hospital.json": `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Organization","name":"General"}}]}`,
		"c-batch.json":    `{"resourceType": "Bundle", "type": "batch", "entry": []}`,
		"d-single.json":   `{"resourceType": "Patient", "id": "p1"}`,
		"e-obs.ndjson":    `{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := importFiles([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i] = filepath.Base(got[i])
	}
	want := []string{"b-hospital.json", "c-batch.json", "a-patient.json", "d-single.json", "e-obs.ndjson"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("import order (-want +got):\n%s", diff)
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A transaction that lost to concurrent changes (409) is sent again; any
// other failure is not.
func TestImportRetriesConflicts(t *testing.T) {
	answer := func(status int, body string) *http.Response {
		return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(body)), Header: http.Header{}}
	}
	ok := `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201 Created"}}]}`
	conflict := `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"conflict","diagnostics":"a concurrent change won; retry the transaction"}]}`
	for _, c := range []struct {
		name    string
		answers []int
		calls   int64
		wantErr bool
	}{
		{"conflict twice, then done", []int{409, 409, 200}, 3, false},
		{"conflict every time", []int{409, 409, 409, 409, 409, 409, 409}, 5, true},
		{"bad request is final", []int{400, 200}, 1, true},
	} {
		var calls atomic.Int64
		im := &importer{client: &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
			i := calls.Add(1) - 1
			if c.answers[i] == 200 {
				return answer(200, ok), nil
			}
			return answer(c.answers[i], conflict), nil
		})}}
		n, err := im.post(map[string]any{"resourceType": "Bundle", "type": "transaction"})
		if (err != nil) != c.wantErr || calls.Load() != c.calls || (!c.wantErr && n != 1) {
			t.Errorf("%s: %d resources, err %v after %d calls; want error %v after %d", c.name, n, err, calls.Load(), c.wantErr, c.calls)
		}
	}
}
