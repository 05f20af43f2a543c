package fhirapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

// FuzzBundle feeds arbitrary bytes to the bundle parser and to the whole
// POST /fhir handler: neither may panic, the parser may only fail with a
// client error, and the handler may only answer 200 or a 4xx
// OperationOutcome.
func FuzzBundle(f *testing.F) {
	seeds := []any{
		bundleOf("transaction",
			ent(uuidA, "POST", "Patient", patient("", "f1"), "ifNoneExist", "identifier=urn:sys|f1"),
			ent(uuidB, "POST", "Observation", observation(uuidA)),
			ent("", "PUT", "Patient?identifier=urn:sys|f2", patient("", "f2")),
			ent("", "DELETE", "Patient/x", nil),
			ent("", "GET", "Patient/x/_history/1", nil)),
		bundleOf("batch", ent("", "POST", "Patient", patient("", "")), ent("", "PATCH", "Patient/p", obj{"resourceType": "Binary", "contentType": "application/json-patch+json", "data": "W10="})),
		bundleOf("transaction", ent(uuidA, "POST", "Observation", observation("Patient?identifier=urn:sys|f1"))),
		bundleOf("transaction", ent(uuidA, "POST", "Patient", patient("", "")), ent(uuidA, "POST", "Patient", patient("", ""))),
	}
	for _, s := range seeds {
		b, _ := json.Marshal(s)
		f.Add(b)
	}
	f.Add([]byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT","url":"Patient/../../x"}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"batch","entry":[null,1,"x",{}]}`))
	env := newTestEnvOn(f, newMemStore())
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := parseBundle(data, 100, testBase); err != nil {
			var fe *Error
			if !errors.As(err, &fe) || fe.Status >= 500 {
				t.Fatalf("parseBundle: %v", err)
			}
		}
		env.t = t
		st, b := env.do("POST", "/fhir", data)
		if st >= 500 || st != http.StatusOK && b["resourceType"] != "OperationOutcome" {
			t.Fatalf("POST /fhir: %d %v", st, b)
		}
	})
}
