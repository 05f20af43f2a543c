package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
	"github.com/phivault/phivault/internal/store"
)

// noPatientSearch is the shipped set plus a forbid of Patient searches for
// everyone, the operator included: a set that denies what the default
// allows.
func noPatientSearch() []byte {
	return append(policy.DefaultPolicies(), []byte(`
@id("test-no-patient-search")
@reason("Patient searches are off")
forbid (principal, action == Action::"search", resource)
when { resource.type == "Patient" };
`)...)
}

// servePolicyDir runs serve on an existing data directory and returns a
// function that GETs a path with an operator token (returning the status)
// and one that stops the server (SIGINT, as under a terminal).
func servePolicyDir(t *testing.T, dir string) (get func(path string) int, stop func()) {
	t.Helper()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(serveOptions{data: dir, listen: "127.0.0.1:0", logLevel: "info", ready: func(u string) { ready <- u }}, &lockedBuffer{})
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the server did not start")
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		if err := <-done; err != nil {
			t.Errorf("serve stopped with %v", err)
		}
	}
	t.Cleanup(stop)
	code, out, errs := runOut("token", "--data", dir, "--role", "operator")
	if code != exitOK {
		t.Fatalf("token: exit %d %s", code, errs)
	}
	tok := strings.TrimSpace(out)
	client := tlsClient(t, filepath.Join(dir, tlsDirName, "cert.pem"))
	get = func(path string) int {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	return get, stop
}

// TestPolicySetOfflineInForceAtStart: a data directory's policy.cedar
// from before sets were kept in the store is enforced while the store
// holds none; once a set is installed (the server stopped) the store's set
// wins over the file, is what 'policy show' prints, is sealed at rest, and
// is in force when the server starts.
func TestPolicySetOfflineInForceAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers; skipped under -short")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	deny := noPatientSearch()
	legacy := filepath.Join(dir, policyFileName)
	if err := os.WriteFile(legacy, deny, 0o600); err != nil {
		t.Fatal(err)
	}

	get, stop := servePolicyDir(t, dir)
	if s := get("/fhir/Patient?_count=1"); s != http.StatusForbidden {
		t.Fatalf("policy.cedar forbids Patient searches and the store holds no set: status %d, want 403", s)
	}
	stop()

	if code, out, errs := runOut("policy", "reset", "--data", dir); code != exitOK {
		t.Fatalf("policy reset offline: exit %d %s%s", code, out, errs)
	}
	if _, err := os.Stat(legacy); err != nil {
		t.Fatalf("the old policy.cedar is left in place: %v", err)
	}
	get, stop = servePolicyDir(t, dir)
	if s := get("/fhir/Patient?_count=1"); s != http.StatusOK {
		t.Fatalf("the store holds the default set, policy.cedar a denying one: status %d, want 200 (the store wins)", s)
	}
	stop()

	src := filepath.Join(t.TempDir(), "deny.cedar")
	if err := os.WriteFile(src, deny, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(legacy); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runOut("policy", "set", "--data", dir, src)
	if code != exitOK || !strings.Contains(out, "takes effect when the server starts") {
		t.Fatalf("policy set offline: exit %d %s%s", code, out, errs)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Errorf("policy set wrote %s (err %v); the set belongs in the store", legacy, err)
	}
	if code, out, errs := runOut("policy", "show", "--data", dir); code != exitOK || out != string(deny) {
		t.Fatalf("policy show offline: exit %d %s; want the installed set", code, errs)
	}
	assertPolicySealed(t, dir, "test-no-patient-search")

	get, _ = servePolicyDir(t, dir)
	if s := get("/fhir/Patient?_count=1"); s != http.StatusForbidden {
		t.Fatalf("a set installed offline is not in force when the server starts: status %d, want 403", s)
	}
	if s := get("/fhir/Observation?_count=1"); s != http.StatusOK {
		t.Errorf("the installed set keeps the rest of the default: Observation search %d, want 200", s)
	}
}

// assertPolicySealed reads the store's policy value behind the barrier's
// back: it is there, and the policy text (marker) is not readable in it.
func assertPolicySealed(t *testing.T, dir, marker string) {
	t.Helper()
	n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	var raw []byte
	if err := n.db.View(context.Background(), func(r store.Reader) error {
		var err error
		raw, err = r.Meta(policyMeta)
		return err
	}); err != nil {
		t.Fatalf("the store holds no policy set after policy set: %v", err)
	}
	if bytes.Contains(raw, []byte(marker)) || bytes.Contains(raw, []byte("permit (")) {
		t.Errorf("the stored policy set is readable at rest")
	}
}

// TestPolicyReloadKeepsWorkingSet: a node re-reading the store's set
// (what a notification or the poll does) takes a new valid set into use
// without any notification, and a set that does not load leaves the
// working one in force, with an ERROR that does not quote the set.
func TestPolicyReloadKeepsWorkingSet(t *testing.T) {
	dir := t.TempDir()
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s := &policySync{n: n}
	var wg sync.WaitGroup
	rerun(ctx, &wg, 20*time.Millisecond, func() { s.reload(ctx, log) }) // the poll alone, no notification
	defer func() { cancel(); wg.Wait() }()

	deny := noPatientSearch()
	if _, err := n.savePolicy(ctx, deny); err != nil {
		t.Fatal(err)
	}
	waitPolicy(t, n, deny, "a new set written to the store")

	broken := []byte(`@id("secret-marker") permit (principal, action, resource) when { this is not cedar };`)
	if _, err := n.savePolicy(ctx, broken); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(string(logs.Bytes()), "level=ERROR") {
		if time.Now().After(deadline) {
			t.Fatalf("no ERROR logged for a stored set that does not load; logs:\n%s", string(logs.Bytes()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := n.policy.Source(); !bytes.Equal(got, deny) {
		t.Fatal("a stored set that does not load replaced the working one")
	}
	if strings.Contains(string(logs.Bytes()), "secret-marker") {
		t.Errorf("the log quotes the policy set:\n%s", string(logs.Bytes()))
	}

	if _, err := n.savePolicy(ctx, policy.DefaultPolicies()); err != nil {
		t.Fatal(err)
	}
	waitPolicy(t, n, policy.DefaultPolicies(), "a valid set after a broken one")
}

// waitPolicy waits (up to 5 s) until n's engine enforces want.
func waitPolicy(t *testing.T, n *node, want []byte, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !bytes.Equal(n.policy.Source(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not in force after 5s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPolicyRepairBrokenStoredSet: a stored set that no longer loads
// stops the node from opening (fail closed, one line and a hint), and
// 'policy reset' can still replace it.
func TestPolicyRepairBrokenStoredSet(t *testing.T) {
	dir := t.TempDir()
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.savePolicy(context.Background(), []byte(`permit (principal, action, resource) when { this is not cedar };`))
	n.close()
	if err != nil {
		t.Fatal(err)
	}
	code, _, errs := runOut("policy", "show", "--data", dir)
	if code != exitFail || !strings.Contains(errs, "the policy set in the store does not load") || !strings.Contains(errs, "hint: ") {
		t.Fatalf("policy show over a broken stored set: exit %d %s", code, errs)
	}
	if code, out, errs := runOut("policy", "reset", "--data", dir); code != exitOK {
		t.Fatalf("policy reset over a broken stored set: exit %d %s%s", code, out, errs)
	}
	if code, out, errs := runOut("policy", "show", "--data", dir); code != exitOK || out != string(policy.DefaultPolicies()) {
		t.Fatalf("policy show after the reset: exit %d %s; want the default set", code, errs)
	}
}

// TestPolicyShowThroughSocket: with a server holding the directory,
// 'policy show' prints the set that server enforces, from its admin socket
// (GET /admin/policy).
func TestPolicyShowThroughSocket(t *testing.T) {
	dir := t.TempDir()
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	deny := noPatientSearch()
	if err := n.installPolicy(context.Background(), deny, "test"); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/policy", n.adminPolicyShowHandler)
	ln, err := server.ListenAdmin(filepath.Join(dir, server.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: server.AdminHandler(mux), ConnContext: server.AdminConnContext}
	go srv.Serve(ln)
	defer srv.Close()
	code, out, errs := runOut("policy", "show", "--data", dir)
	if code != exitOK || out != string(deny) {
		t.Fatalf("policy show with a server holding the directory: exit %d %s; want the server's set", code, errs)
	}
}
