package main

// Acceptance test 1 of issue 2: every clinical and administrative example of
// the official R4 examples package can be stored with PUT over HTTPS and is
// read back exactly as it was sent. A user relies on phivault never
// changing, dropping or reformatting what they store (decimals included),
// and on the validator rejecting only what R4 really forbids.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/corpus"
	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/server"
)

// testServer is an opened data directory served by the full public handler
// (authentication, limits, gzip, audit) over a real TLS 1.3 listener.
type testServer struct {
	n      *node
	base   string // https://127.0.0.1:PORT/fhir
	client *http.Client
	token  string
}

// newTestServer initializes a fresh data directory with a development key
// and serves it until the test ends. log receives the server's logs.
func newTestServer(t testing.TB, log *slog.Logger) *testServer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	return serveDir(t, dir, log)
}

// serveDir serves the data directory dir over HTTPS (HTTP/2, its
// development certificate) until the test ends, with an operator token.
func serveDir(t testing.TB, dir string, log *slog.Logger) *testServer {
	t.Helper()
	n, err := openNode(context.Background(), dir, log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := server.DevCertificate(filepath.Join(dir, tlsDirName))
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	ts.EnableHTTP2 = true
	ts.TLS = server.TLSConfig(cert)
	s := &testServer{n: n, base: "https://" + ts.Listener.Addr().String() + "/fhir"}
	h = server.Handler(server.Config{FHIR: n.api(s.base).Handler(), Auth: n.tokens, Audit: n.audit, Log: log, Metrics: server.NewMetrics()})
	ts.StartTLS()
	t.Cleanup(func() { ts.Close(); n.close() })

	s.client = tlsClient(t, filepath.Join(dir, tlsDirName, "cert.pem"))
	tok, _, err := n.tokens.Mint("acceptance-test", []string{authn.OperatorRole}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s.token = tok.Reveal()
	return s
}

// tlsClient trusts only the data directory's development certificate and
// refuses anything below TLS 1.3.
func tlsClient(t testing.TB, certPEM string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16}
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// do sends a request with the bearer token and returns status and body.
func (s *testServer) do(method, rel string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, s.base+"/"+rel, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// definitionTypes are the conformance and definition resources of the
// package; they are specifications, not patient or administrative data.
var definitionTypes = map[string]bool{
	"StructureDefinition": true, "ValueSet": true, "CodeSystem": true, "SearchParameter": true,
	"CapabilityStatement": true, "OperationDefinition": true, "CompartmentDefinition": true,
	"ImplementationGuide": true, "ConceptMap": true, "NamingSystem": true, "StructureMap": true,
	"GraphDefinition": true, "MessageDefinition": true, "TerminologyCapabilities": true,
	"ExampleScenario": true,
}

type example struct {
	name string
	data []byte
}

// clinicalExamples returns the package's clinical and administrative
// examples: package/Type-*.json of a resource type that is not a definition
// type, and not a Bundle that holds only definitions.
func clinicalExamples(t *testing.T) []example {
	var out []example
	corpus.Examples(t, func(name string, data []byte) bool {
		base := path.Base(name)
		typ, _, ok := strings.Cut(base, "-")
		if !ok || definitionTypes[typ] || !fhir.IsResourceType(typ) {
			return true
		}
		if typ == "Bundle" && definitionBundle(data) {
			return true
		}
		out = append(out, example{base, data})
		return true
	})
	return out
}

func definitionBundle(data []byte) bool {
	var b struct {
		Entry []struct {
			Resource struct{ ResourceType string }
		}
	}
	if json.Unmarshal(data, &b) != nil || len(b.Entry) == 0 {
		return false
	}
	for _, e := range b.Entry {
		if !definitionTypes[e.Resource.ResourceType] {
			return false
		}
	}
	return true
}

// invalidExamples returns the files that internal/fhir's author lists as
// genuinely invalid R4 (each with the spec rule it breaks).
func invalidExamples(t *testing.T) map[string]bool {
	f, err := os.Open(filepath.Join("..", "..", "internal", "fhir", "testdata", "invalid-examples.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		file, _, _ := strings.Cut(line, " | ")
		out[file] = true
	}
	return out
}

// decodeJSON parses JSON keeping numbers as their text, so that 1.50 and
// 1.5 differ: FHIR decimals carry their precision.
func decodeJSON(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the JSON object")
	}
	return m, nil
}

// withoutServerMeta drops meta.versionId and meta.lastUpdated (the server
// owns them), and meta itself if nothing else is left in it.
func withoutServerMeta(r map[string]any) map[string]any {
	if m, ok := r["meta"].(map[string]any); ok {
		delete(m, "versionId")
		delete(m, "lastUpdated")
		if len(m) == 0 {
			delete(r, "meta")
		}
	}
	return r
}

func TestAcceptExamplesRoundTrip(t *testing.T) {
	examples := clinicalExamples(t)
	if len(examples) < 650 {
		t.Fatalf("found only %d clinical and administrative examples; want about 675", len(examples))
	}
	invalid := invalidExamples(t)
	s := newTestServer(t, slog.New(slog.DiscardHandler))

	var (
		mu                       sync.Mutex
		stored, rejected, failed int
	)
	check := func(ex example) (rejectedOK bool, err error) {
		sent, err := decodeJSON(ex.data)
		if err != nil {
			return false, fmt.Errorf("the example is not JSON: %v", err)
		}
		typ, _ := sent["resourceType"].(string)
		id, _ := sent["id"].(string)
		if id == "" {
			return false, fmt.Errorf("the example has no id")
		}
		rel := typ + "/" + id
		st, body, err := s.do(http.MethodPut, rel, ex.data)
		if err != nil {
			return false, err
		}
		if typ == "AuditEvent" {
			// The audit log is written by the server alone: a client's
			// AuditEvent is refused (405, an OperationOutcome) and stored
			// nowhere; GET AuditEvent/{id} reads the log's leaves.
			oo, _ := decodeJSON(body)
			if st != http.StatusMethodNotAllowed || oo["resourceType"] != "OperationOutcome" {
				return false, fmt.Errorf("AuditEvent is read-only, but PUT gave %d %.300s; want 405 with an OperationOutcome", st, body)
			}
			return true, nil
		}
		if invalid[ex.name] {
			// Listed as invalid: 422 with an OperationOutcome, nothing stored.
			oo, _ := decodeJSON(body)
			if st != http.StatusUnprocessableEntity || oo["resourceType"] != "OperationOutcome" || oo["issue"] == nil {
				return false, fmt.Errorf("listed as invalid R4, but PUT gave %d %.300s; want 422 with an OperationOutcome", st, body)
			}
			if st, _, err := s.do(http.MethodGet, rel, nil); err != nil || st != http.StatusNotFound {
				return false, fmt.Errorf("a rejected PUT must store nothing; GET gave %d (%v)", st, err)
			}
			return true, nil
		}
		if st != http.StatusOK && st != http.StatusCreated {
			return false, fmt.Errorf("PUT gave %d %.600s", st, body)
		}
		st, body, err = s.do(http.MethodGet, rel, nil)
		if err != nil || st != http.StatusOK {
			return false, fmt.Errorf("GET after PUT gave %d (%v) %.300s", st, err, body)
		}
		got, err := decodeJSON(body)
		if err != nil {
			return false, fmt.Errorf("GET returned bad JSON: %v", err)
		}
		if m, _ := got["meta"].(map[string]any); m["versionId"] == nil || m["lastUpdated"] == nil {
			return false, fmt.Errorf("read back without meta.versionId/meta.lastUpdated")
		}
		if want, got := withoutServerMeta(sent), withoutServerMeta(got); !reflect.DeepEqual(want, got) {
			return false, fmt.Errorf("read back differs from what was sent:\n%s", jsonDiff(want, got))
		}
		return false, nil
	}

	work := make(chan example)
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			for ex := range work {
				rej, err := check(ex)
				mu.Lock()
				switch {
				case err != nil:
					failed++
					t.Errorf("%s: %v", ex.name, err)
				case rej:
					rejected++
				default:
					stored++
				}
				mu.Unlock()
			}
		})
	}
	seen := map[string]bool{}
	for _, ex := range examples {
		seen[ex.name] = true
		work <- ex
	}
	close(work)
	wg.Wait()
	for name := range invalid {
		if !seen[name] {
			t.Errorf("invalid-examples.txt lists %s, which is not among the clinical examples", name)
		}
	}
	t.Logf("%d examples in %v: %d stored and read back equal, %d rejected as listed (invalid R4, or AuditEvent: read-only), %d failed",
		len(examples), time.Since(start).Round(time.Millisecond), stored, rejected, failed)
}

// jsonDiff names the first few paths where two JSON values differ.
func jsonDiff(want, got any) string {
	var out []string
	var walk func(p string, a, b any)
	walk = func(p string, a, b any) {
		if len(out) >= 5 || reflect.DeepEqual(a, b) {
			return
		}
		am, aok := a.(map[string]any)
		bm, bok := b.(map[string]any)
		if aok && bok {
			for k := range am {
				walk(p+"."+k, am[k], bm[k])
			}
			for k := range bm {
				if _, ok := am[k]; !ok {
					walk(p+"."+k, nil, bm[k])
				}
			}
			return
		}
		as, aok := a.([]any)
		bs, bok := b.([]any)
		if aok && bok && len(as) == len(bs) {
			for i := range as {
				walk(fmt.Sprintf("%s[%d]", p, i), as[i], bs[i])
			}
			return
		}
		out = append(out, fmt.Sprintf("  %s: sent %.120v, got %.120v", p, a, b))
	}
	walk("", want, got)
	return strings.Join(out, "\n")
}
