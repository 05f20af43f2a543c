package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestSyslogSinkFlags checks that a bad --syslog/--syslog-ca pair is a
// usage error (exit 2) before anything starts, and that no flag starts
// nothing.
func TestSyslogSinkFlags(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := &node{}
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct{ target, ca string }{
		{"", notPEM},                            // CA without a server
		{"tcp://siem.example:6514", notPEM},     // not TLS
		{"tls://siem.example", notPEM},          // no port
		{"tls://siem.example:6514", ""},         // no CA: the server could not be verified
		{"tls://siem.example:6514", notPEM},     // no certificate in the CA file
		{"tls://siem.example:6514", dir + "/x"}, // missing CA file
	} {
		stop, err := n.startSyslogSink(context.Background(), tc.target, tc.ca, log)
		var ce *cliError
		if !errors.As(err, &ce) || ce.code != exitUsage || stop != nil {
			t.Errorf("--syslog %q --syslog-ca %q: err %v, want a usage error", tc.target, tc.ca, err)
		}
	}
	stop, err := n.startSyslogSink(context.Background(), "", "", log)
	if err != nil || stop == nil {
		t.Fatalf("no flags: %v", err)
	}
	stop()
}
