package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/phivault/phivault/internal/records"
)

// TestKeysRotateOffline: rotate, status and retire on a directory no
// server holds; data stays readable and the old version is retirable.
func TestKeysRotateOffline(t *testing.T) {
	dir := keysDir(t)
	code, out, errs := runOut("keys", "rotate", "--data", dir)
	if code != exitOK || !strings.Contains(out, "KEK version 2 created") || !strings.Contains(out, "version 1: wraps 0 data keys") {
		t.Fatalf("rotate: %d %q %q", code, out, errs)
	}
	if code, _, errs := runOut("keys", "retire", "--data", dir, "--version", "2"); code == exitOK {
		t.Errorf("retired the current version: %q", errs)
	}
	if code, _, _ := runOut("keys", "retire", "--data", dir); code != exitUsage {
		t.Errorf("retire without --version: exit %d", code)
	}
	if code, _, errs := runOut("keys", "retire", "--data", dir, "--version", "1"); code != exitOK {
		t.Fatalf("retire 1: %q", errs)
	}
	code, out, _ = runOut("keys", "status", "--data", dir)
	if code != exitOK || strings.Contains(out, "version 1") || !strings.Contains(out, "version 2 (current)") {
		t.Errorf("status after retire: %q", out)
	}
	if code, _, errs := runOut("check", "--data", dir); code != exitOK {
		t.Errorf("check after rotation: %q", errs)
	}
}

// TestKeysRotateUnderLoad rotates through records while writers and
// readers run: zero failures, every key ends on the new version, the old
// one is retirable.
func TestKeysRotateUnderLoad(t *testing.T) {
	dir := keysDir(t)
	ctx := context.Background()
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	put := func(id string, i int) error {
		res := map[string]any{"resourceType": "Patient", "id": id, "name": []any{map[string]any{"family": fmt.Sprintf("Load%d", i)}}}
		_, err := n.records.Commit(ctx, []records.Op{{Type: "Patient", ID: id, Resource: res}}, nil)
		return err
	}
	for i := range 200 {
		if err := put(fmt.Sprintf("p%d", i), 0); err != nil {
			t.Fatal(err)
		}
	}
	var fails, ops atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("p%d", (i*13+w*37)%200)
				if _, err := n.records.Read(ctx, "Patient", id); err != nil {
					fails.Add(1)
				}
				if err := put(fmt.Sprintf("w%d-%d", w, i%40), i); err != nil {
					fails.Add(1)
				}
				ops.Add(2)
			}
		}()
	}
	// Status during the rotation shows its progress.
	var during string
	var second error
	n.rot.hook = func(done, todo int) {
		if during == "" && done == 0 && todo > 0 {
			during, _ = n.keysOp(ctx, "status", 0, "test")
			_, second = n.keysOp(ctx, "rotate", 0, "test")
		}
	}
	out, err := n.keysOp(ctx, "rotate", 0, "test")
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if ops.Load() == 0 {
		t.Error("no operation ran during rotation")
	}
	if fails.Load() != 0 {
		t.Errorf("%d of %d reads and writes failed during rotation", fails.Load(), ops.Load())
	}
	if !strings.Contains(out, "version 1: wraps 0 data keys") || !strings.Contains(out, "last rotation: to version 2") {
		t.Errorf("after rotation: %s", out)
	}
	if !strings.Contains(during, "rotation to version 2 RUNNING (pass 1 of 2)") || !strings.Contains(during, "0 of ") {
		t.Errorf("status during the rotation: %q; want its progress", during)
	}
	if second == nil || !strings.Contains(second.Error(), "already running") {
		t.Errorf("a rotation started during another: %v; want a refusal", second)
	}
	if _, err := n.keysOp(ctx, "rotate", 0, "test"); err != nil { // a second rotation after the first is allowed
		t.Errorf("second rotation: %v", err)
	}
	for v := range 2 {
		if _, err := n.keysOp(ctx, "retire", v+1, "test"); err != nil {
			t.Errorf("retire the old version %d: %v", v+1, err)
		}
	}
	t.Logf("%d operations during rotation; %s", ops.Load(), strings.SplitN(out, "\n", 2)[0])
}
