package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startServeWebhook is startServe with --alert-webhook.
func startServeWebhook(t *testing.T, webhook string) *liveServer {
	return startServeAlerting(t, &alertRouting{webhook: webhook})
}

// startServeAlerting is startServe with alert routing.
func startServeAlerting(t *testing.T, routing *alertRouting) *liveServer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	s := &liveServer{dir: dir, logs: &lockedBuffer{}}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(serveOptions{data: dir, listen: "127.0.0.1:0", logLevel: "info", alerting: routing,
			ready: func(u string) { ready <- u }}, s.logs)
	}()
	select {
	case s.base = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the server did not start")
	}
	t.Cleanup(func() {
		select {
		case <-done:
			return
		default:
		}
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		if err := <-done; err != nil {
			t.Errorf("serve stopped with %v", err)
		}
	})
	s.tls = tlsClient(t, filepath.Join(dir, tlsDirName, "cert.pem"))
	s.op = strings.TrimSpace(cliIn(t, "", "token", "--data", dir, "--role", "operator"))
	return s
}

// TestServeLiveDetector: with serve running, a user reading their own
// record and a VIP's raises alerts that reach the webhook within seconds
// and that a privacy officer (not a physician) lists through the API.
func TestServeLiveDetector(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server (-short)")
	}
	hook := make(chan map[string]any, 16)
	wh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		hook <- m
	}))
	defer wh.Close()
	s := startServeWebhook(t, wh.URL)
	user := func(id string) map[string]any {
		return map[string]any{"system": "urn:phivault:user", "value": id}
	}
	s.put(t, map[string]any{"resourceType": "Practitioner", "id": "pr-ann", "identifier": []any{user("ann")}, "name": []any{map[string]any{"family": "Quist"}}})
	s.put(t, map[string]any{"resourceType": "Patient", "id": "pat-ann", "identifier": []any{user("ann")}, "name": []any{map[string]any{"family": "Quist"}}})
	s.put(t, map[string]any{"resourceType": "Patient", "id": "pat-vip", "name": []any{map[string]any{"family": "Star"}},
		"meta": map[string]any{"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "V"}}}})
	ann := strings.TrimSpace(cliIn(t, "", "token", "--data", s.dir, "--role", "operator", "--user", "ann"))
	for _, p := range []string{"pat-ann", "pat-vip"} {
		if st, body := s.fhir(t, "GET", "Patient/"+p, ann, nil); st != 200 {
			t.Fatalf("read %s: %d %s", p, st, body)
		}
	}
	read := time.Now()
	want := map[string][]string{"pat-ann": {"self-access"}, "pat-vip": {"restricted-patient"}}
	for len(want) > 0 {
		select {
		case m := <-hook:
			p, _ := m["patient_id"].(string)
			var rules []string
			for _, r := range m["rules"].([]any) {
				rules = append(rules, r.(string))
			}
			if w, ok := want[p]; ok && m["user_id"] == "ann" && slices.Contains(rules, w[0]) {
				t.Logf("alert %s %v reached the webhook %v after the read", p, rules, time.Since(read).Round(10*time.Millisecond))
				delete(want, p)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no webhook for %v; server log:\n%s", want, s.logs.Bytes())
		}
	}

	cliIn(t, "correct horse battery staple\n", "user", "add", "--data", s.dir, "po1", "--role", "privacy-officer", "--password-stdin")
	cliIn(t, "correct horse battery staple\n", "user", "add", "--data", s.dir, "doc1", "--role", "physician", "--password-stdin")
	po := strings.TrimSpace(cliIn(t, "", "token", "--data", s.dir, "--user", "po1", "--role", "privacy-officer"))
	doc := strings.TrimSpace(cliIn(t, "", "token", "--data", s.dir, "--user", "doc1", "--role", "physician"))
	st, body := s.fhir(t, "GET", "_alerts", po, nil)
	if st != 200 || !strings.Contains(body, `"pat-vip"`) || !strings.Contains(body, `"self-access"`) {
		t.Errorf("privacy officer lists alerts: %d %s", st, body)
	}
	if st, body := s.fhir(t, "GET", "_alerts", doc, nil); st != 403 || strings.Contains(body, "pat-vip") {
		t.Errorf("physician lists alerts: %d %s", st, body)
	}
}
