package fhirapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCapabilityStatement checks that /metadata claims the interactions
// this server really offers: a client plans its calls from it.
func TestCapabilityStatement(t *testing.T) {
	env := newTestEnv(t)
	st, cs := env.do("GET", "/fhir/metadata", nil)
	if st != http.StatusOK || cs["resourceType"] != "CapabilityStatement" || cs["fhirVersion"] != "4.0.1" {
		t.Fatalf("GET /metadata = %d %v", st, cs["resourceType"])
	}
	rest := cs["rest"].([]any)[0].(map[string]any)
	system := map[string]bool{}
	for _, i := range rest["interaction"].([]any) {
		system[i.(map[string]any)["code"].(string)] = true
	}
	for _, want := range []string{"transaction", "batch", "history-system"} {
		if !system[want] {
			t.Errorf("system interaction %q not claimed", want)
		}
	}
	var patient map[string]any
	for _, r := range rest["resource"].([]any) {
		if r.(map[string]any)["type"] == "Patient" {
			patient = r.(map[string]any)
		}
	}
	if patient == nil {
		t.Fatal("Patient not listed")
	}
	claimed := map[string]bool{}
	for _, i := range patient["interaction"].([]any) {
		claimed[i.(map[string]any)["code"].(string)] = true
	}
	// Each claimed type interaction answers on the real handler.
	calls := map[string]struct {
		method, path string
		body         any
	}{
		"create":           {"POST", "/fhir/Patient", map[string]any{"resourceType": "Patient"}},
		"update":           {"PUT", "/fhir/Patient/cap1", map[string]any{"resourceType": "Patient", "id": "cap1"}},
		"read":             {"GET", "/fhir/Patient/cap1", nil},
		"vread":            {"GET", "/fhir/Patient/cap1/_history/1", nil},
		"history-instance": {"GET", "/fhir/Patient/cap1/_history", nil},
		"history-type":     {"GET", "/fhir/Patient/_history", nil},
		"search-type":      {"GET", "/fhir/Patient?identifier=urn:sys|nobody", nil}, // the test Searcher knows identifier
		"delete":           {"DELETE", "/fhir/Patient/cap1", nil},
	}
	for _, name := range []string{"create", "update", "read", "vread", "history-instance", "history-type", "search-type", "delete"} {
		if !claimed[name] {
			t.Errorf("Patient interaction %q not claimed", name)
			continue
		}
		c := calls[name]
		if st, _ := env.do(c.method, c.path, c.body); st >= 300 {
			t.Errorf("%s (%s %s) is claimed but answered %d", name, c.method, c.path, st)
		}
	}
}

// /metadata names SMART on FHIR as the security service, and claims bulk
// $export only when the export is configured (and then it answers).
func TestCapabilitySecurityAndExport(t *testing.T) {
	env := newTestEnv(t)
	_, cs := env.do("GET", "/fhir/metadata", nil)
	rest := cs["rest"].([]any)[0].(map[string]any)
	svc, _ := json.Marshal(rest["security"].(map[string]any)["service"])
	if !strings.Contains(string(svc), `"code":"SMART-on-FHIR"`) {
		t.Errorf("security service = %s, want SMART-on-FHIR", svc)
	}
	if _, claimed := rest["operation"]; claimed {
		t.Error("$export is claimed by a server without export")
	}
	if st, _ := env.do("GET", "/fhir/$export", nil); st != http.StatusNotFound {
		t.Errorf("$export is not claimed but answers %d", st)
	}
	ex := newExportEnv(t, time.Hour)
	w := raw(ex.h, &exportAdmin, "GET", "/fhir/metadata", nil)
	if !strings.Contains(w.Body.String(), `"operation":[{"definition":"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export","name":"export"}]`) {
		t.Errorf("a server with export does not claim it: %.300s", w.Body.String())
	}
	ex.kickoff(exportAdmin, "/fhir/$export")
}
