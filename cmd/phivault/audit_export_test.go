package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
)

// TestAuditExport: export writes every leaf from --since on, byte for
// byte, one per line, and records the export itself first.
func TestAuditExport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	var out, errb bytes.Buffer
	if code := run([]string{"init", "--data", dir, "--dev-key"}, &out, &errb); code != 0 {
		t.Fatalf("init: %d %s", code, errb.String())
	}
	ctx := context.Background()
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), &errb)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for i := range 5 {
		e := &audit.Event{Time: time.Now(), Interaction: "read", Action: "R", Outcome: "0", UserID: "u" + string(rune('a'+i)), Allowed: true}
		if err := n.audit.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	size, err := n.audit.Prover().Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < size; i++ {
		l, err := n.audit.Prover().Leaf(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, l)
	}
	n.close()

	since := size - 3
	out.Reset()
	errb.Reset()
	if code := run([]string{"audit", "export", "--data", dir, "--since", itoa(since), "--format", "jsonl"}, &out, &errb); code != 0 {
		t.Fatalf("export: %d %s", code, errb.String())
	}
	got := bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n"))
	if len(got) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(got), out.String())
	}
	for i, l := range got {
		if !bytes.Equal(l, want[since+uint64(i)]) {
			t.Errorf("line %d is not leaf %d byte for byte", i, since+uint64(i))
		}
		if !json.Valid(l) {
			t.Errorf("line %d is not JSON", i)
		}
	}
	// The export was recorded (as the next leaf, not in its own output).
	out.Reset()
	if code := run([]string{"audit", "export", "--data", dir, "--since", itoa(size)}, &out, &errb); code != 0 {
		t.Fatal(errb.String())
	}
	if !strings.Contains(out.String(), `"code":"audit-export"`) {
		t.Errorf("the export is not in the log: %s", out.String())
	}
	for _, bad := range [][]string{{"--format", "xml"}, {"--since", "-1"}, {"--since", "999"}} {
		if code := run(append([]string{"audit", "export", "--data", dir}, bad...), &out, &errb); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", bad, code, exitUsage)
		}
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
