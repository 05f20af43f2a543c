package main

// Audit coverage of seal and unseal (POST /admin/seal, /admin/unseal on
// the admin socket) with a key file split into shares: the real serve.

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/server"
)

// TestAuditCoverageSeal: the unseal that lets serve start, a seal at run
// time and the unseal after it each leave one event naming the operator.
func TestAuditCoverageSeal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve with a split key file")
	}
	dir := keysDir(t)
	shares := splitDir(t, dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(serveOptions{data: dir, listen: addr, logLevel: "error", ready: func(u string) { ready <- u }}, io.Discard)
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
	for _, s := range shares[:3] {
		unseal(t, dir, s)
	}
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not start after unsealing")
	}
	if code, out, _ := runOut("seal", "--data", dir); code != exitOK || !strings.Contains(out, "sealed") {
		t.Fatalf("seal: %d %q", code, out)
	}
	for _, s := range shares[2:5] {
		unseal(t, dir, s)
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}

	t.Setenv("PHIVAULT_SHARES", strings.Join(shares[:3], ","))
	n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	c := &acCov{t: t, db: n.db}
	var got []acEvent
	for _, ev := range c.since(0) {
		if strings.HasPrefix(ev.Interaction, "key-") {
			got = append(got, ev)
		}
	}
	op := "operator:uid-" + strconv.Itoa(os.Getuid())
	key := func(i string) acEvent {
		return acEvent{Interaction: i, Action: "E", Outcome: "0", User: op, Decision: "permit"}
	}
	if diff := cmp.Diff([]acEvent{key("key-unseal"), key("key-seal"), key("key-unseal")}, got); diff != "" {
		t.Errorf("seal and unseal events (-want +got):\n%s", diff)
	}
}
