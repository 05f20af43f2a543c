package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/server"
)

func statPerm(path string) (os.FileMode, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Mode().Perm(), nil
}

func TestAdminSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "pv") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, server.SocketName)
	if err := os.WriteFile(path, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := server.ListenAdmin(path)
	if err != nil {
		t.Fatalf("ListenAdmin over a stale file: %v", err)
	}
	if perm, err := statPerm(path); err != nil || perm != 0o600 {
		t.Errorf("admin socket mode %v, %v; want 0600", perm, err)
	}
	srv := &http.Server{Handler: server.AdminHandler(fhirDouble()), ConnContext: server.AdminConnContext}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	resp, err := server.AdminClient(path).Get("http://phivault/fhir/Patient/p1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin request: %d, %v", resp.StatusCode, err)
	}
	want := map[string]any{"user": "operator:uid-" + strconv.Itoa(os.Getuid()), "roles": []any{"operator"}, "method": "admin-socket"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("admin principal (-want +got):\n%s", diff)
	}
}

// TestAdminHandlerNeedsPeer checks that AdminHandler refuses a connection
// whose peer credentials are unknown (here: TCP), rather than trusting it.
func TestAdminHandlerNeedsPeer(t *testing.T) {
	srv := httptest.NewServer(server.AdminHandler(fhirDouble()))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/fhir/Patient/p1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("request without peer credentials: %d, want 403", resp.StatusCode)
	}
}

// TestAdminSocketNeverWide watches the socket path while it is made again
// and again: no one may ever see it with a mode wider than 0600 (a peer
// could connect in that instant), and closing the listener removes it.
func TestAdminSocketNeverWide(t *testing.T) {
	dir, err := os.MkdirTemp("", "pv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, server.SocketName)
	stop := make(chan struct{})
	seen := make(chan os.FileMode, 1)
	go func() {
		defer close(seen)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if perm, err := statPerm(path); err == nil && perm != 0o600 {
				seen <- perm
				return
			}
		}
	}()
	for range 300 {
		l, err := server.ListenAdmin(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Fatalf("socket file left after Close: %v", err)
		}
	}
	close(stop)
	if perm, ok := <-seen; ok {
		t.Errorf("admin socket seen with mode %v; want never wider than 0600", perm)
	}
}
