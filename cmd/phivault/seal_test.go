package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/server"
)

var shareRE = regexp.MustCompile(`pvs1-[a-z2-7]+`)

func splitDir(t *testing.T, dir string) []string {
	t.Helper()
	code, out, errs := runOut("keys", "split", "--data", dir, "--shares", "5", "--threshold", "3")
	if code != exitOK {
		t.Fatalf("keys split: exit %d: %s", code, errs)
	}
	shares := shareRE.FindAllString(out, -1)
	if len(shares) != 5 {
		t.Fatalf("keys split printed %d shares", len(shares))
	}
	return shares
}

func unseal(t *testing.T, dir, share string) (int, string, string) {
	t.Helper()
	stdin = strings.NewReader(share + "\n")
	defer func() { stdin = os.Stdin }()
	return runOut("unseal", "--data", dir)
}

// TestSealShamirServe: a split key file makes serve start sealed (503,
// nothing leaked); 2 of 5 shares do not unseal, a wrong share fails closed
// without naming itself, 3 of 5 unseal; seal wipes and 503s again.
func TestSealShamirServe(t *testing.T) {
	dir := keysDir(t)
	shares := splitDir(t, dir)
	other := splitDir(t, keysDir(t))
	// Re-splitting needs K current shares and makes the old ones useless.
	if code, _, _ := runOut("keys", "split", "--data", dir); code != exitKeys {
		t.Errorf("re-split without shares: exit %d", code)
	}
	t.Setenv("PHIVAULT_SHARES", strings.Join(shares[:3], ","))
	old := shares
	shares = splitDir(t, dir)
	t.Setenv("PHIVAULT_SHARES", strings.Join(old[2:], ","))
	if code, _, _ := runOut("keys", "status", "--data", dir); code != exitKeys {
		t.Errorf("old shares still open the re-split key file (exit %d)", code)
	}
	// Offline commands take the shares themselves.
	t.Setenv("PHIVAULT_SHARES", strings.Join(shares[1:4], ","))
	if code, out, errs := runOut("keys", "status", "--data", dir); code != exitOK || !strings.Contains(out, "shamir (3 of 5 shares)") {
		t.Fatalf("keys status offline with shares: %d %q %q", code, out, errs)
	}
	t.Setenv("PHIVAULT_SHARES", strings.Join(shares[1:3], ","))
	if code, _, _ := runOut("keys", "status", "--data", dir); code != exitKeys {
		t.Errorf("2 shares opened the key file offline (exit %d)", code)
	}
	t.Setenv("PHIVAULT_SHARES", "")

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	var logBuf lockedBuffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(serveOptions{data: dir, listen: addr, logLevel: "debug", ready: func(u string) { ready <- u }}, &logBuf)
	}()
	admin := server.AdminClient(filepath.Join(dir, server.SocketName))
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := admin.Get("http://phivault/admin/seal-status")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sealed server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := tlsClient(t, filepath.Join(dir, tlsDirName, "cert.pem"))
	get := func(base, path, tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	sealedBase := "https://" + addr
	expectSealed := func(have int) {
		t.Helper()
		for _, p := range []string{"/fhir/Patient/pat2", "/fhir/Patient?name=Keptalive", "/fhir/metadata", "/healthz"} {
			code, body := get(sealedBase, p, "forged")
			if code != http.StatusServiceUnavailable || !strings.Contains(body, "OperationOutcome") || strings.Contains(body, "Keptalive") {
				t.Errorf("sealed GET %s = %d %s", p, code, body)
			}
			if p == "/fhir/Patient/pat2" && !strings.Contains(body, "sealed: "+string(rune('0'+have))+" of 3 shares given") {
				t.Errorf("sealed body %s; want %d of 3", body, have)
			}
		}
	}
	expectSealed(0)
	if code, out, _ := unseal(t, dir, shares[0]); code != exitOK || !strings.Contains(out, "1 of 3") {
		t.Fatalf("first share: %d %q", code, out)
	}
	if code, _, errs := unseal(t, dir, shares[0]); code == exitOK || !strings.Contains(errs, "already") {
		t.Errorf("repeated share: %d %q", code, errs)
	}
	typo := "a"
	if shares[1][20] == 'a' { // a "typo" that changes nothing is no typo
		typo = "b"
	}
	if code, _, errs := unseal(t, dir, shares[1][:20]+typo+shares[1][21:]); code == exitOK || !strings.Contains(errs, "mistyped") {
		t.Errorf("typo'd share: %d %q", code, errs)
	}
	unseal(t, dir, shares[1])
	expectSealed(2) // 2 of 5 do not unseal
	// A well-formed share from another key file: fails closed at the
	// threshold, names no share, and every share given is discarded.
	code, _, errs := unseal(t, dir, other[2])
	if code != exitKeys || !strings.Contains(errs, "do not open") {
		t.Fatalf("wrong share: exit %d %q", code, errs)
	}
	for i, s := range []string{"share 1", "share 2", "share 3", other[2][:12]} {
		if strings.Contains(errs, s) {
			t.Errorf("the error names a share (%d): %q", i, errs)
		}
	}
	expectSealed(0)
	for _, s := range []string{shares[4], shares[2]} {
		unseal(t, dir, s)
	}
	if code, out, _ := unseal(t, dir, shares[3]); code != exitOK || !strings.Contains(out, "unsealed") {
		t.Fatalf("third share: %d %q", code, out)
	}
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not start after unsealing")
	}
	code, tokOut, _ := runOut("token", "--data", dir, "--role", "operator")
	if code != exitOK {
		t.Fatal("token after unseal")
	}
	tok := strings.TrimSpace(tokOut)
	if code, body := get(base, "/fhir/Patient/pat2", tok); code != http.StatusOK || !strings.Contains(body, "Keptalive") {
		t.Fatalf("unsealed read = %d %s", code, body)
	}
	// Online rotation through the admin socket while serving.
	if code, out, errs := runOut("keys", "rotate", "--data", dir); code != exitOK || !strings.Contains(out, "version 1: wraps 0 data keys") {
		t.Errorf("keys rotate online: %d %q %q", code, out, errs)
	}
	if code, out, _ := runOut("keys", "retire", "--data", dir, "--version", "1"); code != exitOK || strings.Contains(out, "version 1:") {
		t.Errorf("keys retire online: %d %q", code, out)
	}
	// Seal at run time: 503 at once, keys wiped; 3 shares unseal again.
	if code, out, _ := runOut("seal", "--data", dir); code != exitOK || !strings.Contains(out, "sealed") {
		t.Fatalf("seal: %d %q", code, out)
	}
	sealedBase = base
	expectSealed(0)
	if code, _, _ := runOut("keys", "status", "--data", dir); code == exitOK {
		t.Error("keys status answered while sealed")
	}
	for _, s := range shares[:3] {
		unseal(t, dir, s)
	}
	if code, body := get(base, "/fhir/Patient/pat2", tok); code != http.StatusOK || !strings.Contains(body, "Keptalive") {
		t.Fatalf("read after re-unseal = %d %s", code, body)
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	logs := logBuf.Bytes()
	for _, s := range append(shares, "Keptalive", "Zebedeeshred") {
		if bytes.Contains(logs, []byte(s)) {
			t.Errorf("the server log holds %q", s[:10])
		}
	}
	if !bytes.Contains(logs, []byte("SEALED")) {
		t.Error("the log does not say the server is sealed")
	}
}
