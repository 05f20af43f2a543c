package fhirapi

import (
	"net/url"
	"testing"
)

// TestFormatNegotiation: a client that asks only for a format or FHIR
// version the server cannot produce gets 406 with an OperationOutcome and
// an audit event, instead of JSON it did not ask for; the Accept headers
// real clients and browsers send (wildcards, JSON with XML as an
// alternative, q-values, fhirVersion=4.0) still get the resource.
func TestFormatNegotiation(t *testing.T) {
	env := newTestEnv(t)
	if code, _ := env.do("PUT", "/fhir/Patient/neg", map[string]any{"resourceType": "Patient", "id": "neg", "active": true}); code != 201 {
		t.Fatalf("PUT: %d", code)
	}
	served := []struct{ query, accept string }{
		{"", ""},
		{"_format=json", ""},
		{"_format=" + url.QueryEscape("application/fhir+json"), ""},
		{"", "application/fhir+json"},
		{"", "application/json"},
		{"", "*/*"},
		{"", "application/fhir+json; fhirVersion=4.0"},
		{"", "application/fhir+xml;q=1.0, application/fhir+json;q=0.9"},
		{"", "application/fhir+xml, application/xml+fhir;q=0.9, application/json+fhir;q=0.8"},
		{"", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		{"", "application/fhir+json; fhirVersion=3.0, application/json"},
	}
	for _, tc := range served {
		code, body := env.do("GET", "/fhir/Patient/neg?"+tc.query, nil, "Accept", tc.accept)
		if code != 200 || body["id"] != "neg" {
			t.Errorf("_format %q, Accept %q: %d %v, want the Patient", tc.query, tc.accept, code, body)
		}
	}
	refused := []struct{ query, accept string }{
		{"_format=xml", ""},
		{"_format=" + url.QueryEscape("application/fhir+xml"), "application/fhir+json"},
		{"_format=ttl", ""},
		{"", "application/fhir+xml"},
		{"", "application/xml, text/xml"},
		{"", "text/turtle"},
		{"", "application/fhir+json; fhirVersion=3.0"},
		{"", "application/fhir+json;q=0, application/fhir+xml"},
	}
	for _, tc := range refused {
		_, before := env.counts()
		code, body := env.do("GET", "/fhir/Patient/neg?"+tc.query, nil, "Accept", tc.accept)
		if code != 406 || body["resourceType"] != "OperationOutcome" {
			t.Errorf("_format %q, Accept %q: %d %v, want 406 with an OperationOutcome", tc.query, tc.accept, code, body)
		}
		if _, after := env.counts(); after != before+1 {
			t.Errorf("_format %q, Accept %q: %d audit events for the refusal, want 1", tc.query, tc.accept, after-before)
		}
	}
}

// TestBodyFHIRVersion: a body that declares another FHIR version is
// refused with 415 and nothing is stored.
func TestBodyFHIRVersion(t *testing.T) {
	env := newTestEnv(t)
	versions, _ := env.counts()
	code, body := env.do("PUT", "/fhir/Patient/v3", map[string]any{"resourceType": "Patient", "id": "v3"},
		"Content-Type", "application/fhir+json; fhirVersion=3.0")
	if code != 415 || body["resourceType"] != "OperationOutcome" {
		t.Errorf("fhirVersion=3.0 body: %d %v, want 415", code, body)
	}
	if after, _ := env.counts(); after != versions {
		t.Errorf("stored %d versions for a refused body", after-versions)
	}
	if code, _ := env.do("PUT", "/fhir/Patient/v4", map[string]any{"resourceType": "Patient", "id": "v4"},
		"Content-Type", "application/fhir+json; fhirVersion=4.0"); code != 201 {
		t.Errorf("fhirVersion=4.0 body: %d, want 201", code)
	}
}
