package fhirapi

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"strings"
	"testing"
)

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestGzipRequestBody: a gzip-encoded body is read as the JSON it
// encodes; a body that is not valid gzip, one that decompresses past
// MaxBody, and an encoding the server does not read are refused with an
// OperationOutcome and change nothing.
func TestGzipRequestBody(t *testing.T) {
	env := newTestEnv(t)
	body := gzipped(t, []byte(`{"resourceType":"Patient","id":"gz","name":[{"family":"Gzip"}]}`))
	if code, res := env.do("PUT", "/fhir/Patient/gz", body, "Content-Encoding", "gzip"); code != 201 {
		t.Fatalf("gzip body: %d %v", code, res)
	}
	if code, res := env.do("GET", "/fhir/Patient/gz", nil); code != 200 || !strings.Contains(fmt.Sprint(res["name"]), "Gzip") {
		t.Fatalf("read back: %d %v", code, res)
	}
	tx := gzipped(t, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","id":"gz2"},"request":{"method":"PUT","url":"Patient/gz2"}}]}`))
	if code, res := env.do("POST", "/fhir", tx, "Content-Encoding", "x-gzip"); code != 200 {
		t.Fatalf("gzip transaction: %d %v", code, res)
	}

	versions, _ := env.counts()
	bomb := gzipped(t, append([]byte(`{"resourceType":"Patient","id":"gz","text":"`), bytes.Repeat([]byte("a"), MaxBody)...))
	refused := []struct {
		name, encoding string
		body           []byte
		status         int
	}{
		{"not gzip", "gzip", []byte(`{"resourceType":"Patient","id":"gz"}`), 400},
		{"truncated gzip", "gzip", body[:len(body)-6], 400},
		{"larger than MaxBody once decompressed", "gzip", bomb, 413},
		{"brotli", "br", body, 415},
	}
	for _, tc := range refused {
		code, res := env.do("PUT", "/fhir/Patient/gz", tc.body, "Content-Encoding", tc.encoding)
		if code != tc.status || res["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: %d %v, want %d with an OperationOutcome", tc.name, code, res, tc.status)
		}
	}
	if after, _ := env.counts(); after != versions {
		t.Errorf("refused bodies stored %d versions", after-versions)
	}
}
