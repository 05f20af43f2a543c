package audit

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/phivault/phivault/internal/audit/internal/memstore"
	"github.com/phivault/phivault/internal/store"
)

// TestSyslogRsyslog sends the log to a real rsyslogd over TLS, kills it
// (SIGKILL) with events in its socket it never read, keeps it down while
// events are appended, restarts it, then restarts the sink, and checks
// that the receiver has every event, in log order, byte for byte, with
// duplicates only as resends of the same leaf.
func TestSyslogRsyslog(t *testing.T) {
	r := newRsyslog(t)
	r.start()
	st := memstore.New()
	tc, err := SyslogTLS(filepath.Join(r.dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	sink, err := NewSyslogSink(SyslogConfig{Log: NewProver(st), Store: st, Addr: "127.0.0.1:" + r.port, TLS: tc,
		Hostname: "phivault-test", Poll: 20 * time.Millisecond, Batch: 50, Confirm: 500 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// rsyslog's gnutls driver: which TLS version does it agree to?
	probe, err := tls.Dial("tcp", "127.0.0.1:"+r.port, tc)
	if err != nil {
		t.Fatalf("TLS handshake with rsyslogd: %v", err)
	}
	t.Logf("rsyslogd negotiated %s", tls.VersionName(probe.ConnectionState().Version))
	probe.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sink.Run(ctx); close(done) }()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()

	appendLeaves(t, st, 0, 300)
	r.waitFor(300)
	// Events written and flushed into the connection, but never read by
	// rsyslogd: frozen (SIGSTOP), then killed. TCP accepted them; only the
	// sink's confirmation window gets them there.
	r.freeze()
	appendLeaves(t, st, 300, 100)
	for deadline := time.Now().Add(20 * time.Second); sink.sent.Load() < 400; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the sink wrote %d events into the frozen server's socket, want 400", sink.sent.Load())
		}
	}
	time.Sleep(100 * time.Millisecond) // several polls: a sink that trusted the flush would move its cursor now
	r.kill()
	appendLeaves(t, st, 400, 250) // appended while rsyslog is down
	time.Sleep(300 * time.Millisecond)
	r.start()
	r.waitFor(650)
	for deadline := time.Now().Add(10 * time.Second); sink.Delivered() < 650; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("cursor %d, want 650", sink.Delivered())
		}
	}
	if got, _ := sink.Cursor(ctx); got != 650 {
		t.Errorf("persisted cursor %d, want 650", got)
	}

	idx, body := r.received()
	var firsts []uint64
	seen := map[uint64]bool{}
	for _, i := range idx {
		if !seen[i] {
			seen[i] = true
			firsts = append(firsts, i)
		}
	}
	want := make([]uint64, 650)
	for i := range want {
		want[i] = uint64(i)
	}
	if d := cmp.Diff(want, firsts); d != "" {
		t.Errorf("first arrivals not in log order (-want +got):\n%s", d)
	}
	var leaves [][]byte
	if err := st.View(ctx, func(rd store.Reader) (err error) { leaves, err = rd.AuditLeaves(0, 650); return err }); err != nil {
		t.Fatal(err)
	}
	dups := 0
	for i, copies := range body {
		dups += len(copies) - 1
		for _, c := range copies {
			if !bytes.Equal(c, leaves[i]) {
				t.Fatalf("leaf %d received as %q, want %q", i, c, leaves[i])
			}
		}
	}
	t.Logf("%d messages received for 650 events (%d resent duplicates, each marked with its leaf index)", len(idx), dups)

	// phivault restarts: a new sink on the same store resumes at the
	// persisted cursor and sends only what is new.
	cancel()
	<-done
	stopped = true
	appendLeaves(t, st, 650, 50)
	sink2, err := NewSyslogSink(SyslogConfig{Log: NewProver(st), Store: st, Addr: "127.0.0.1:" + r.port, TLS: tc,
		Poll: 20 * time.Millisecond, Confirm: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() { sink2.Run(ctx2); close(done2) }()
	defer func() { cancel2(); <-done2 }()
	r.waitFor(700)
	idx2, _ := r.received()
	tail := idx2[len(idx):]
	wantTail := make([]uint64, 50)
	for i := range wantTail {
		wantTail[i] = uint64(650 + i)
	}
	if d := cmp.Diff(wantTail, tail); d != "" {
		t.Errorf("after a restart of the sink, received (-want +got):\n%s", d)
	}
}

// TestSyslogRefusesUnknownServer checks that the sink delivers nothing to
// a server whose certificate the configured CA did not issue.
func TestSyslogRefusesUnknownServer(t *testing.T) {
	r := newRsyslog(t)
	r.start()
	other := testPKI(t, t.TempDir())
	tc, err := SyslogTLS(other)
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	appendLeaves(t, st, 0, 10)
	sink, err := NewSyslogSink(SyslogConfig{Log: NewProver(st), Store: st, Addr: "127.0.0.1:" + r.port, TLS: tc, Poll: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	sink.Run(ctx)
	if idx, _ := r.received(); len(idx) != 0 || sink.Delivered() != 0 {
		t.Errorf("delivered %d, rsyslog wrote %d; want nothing to an unverified server", sink.Delivered(), len(idx))
	}
}

func TestParseSyslogURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"tls://siem.example:6514", "siem.example:6514"},
		{"tls://[::1]:6514", "[::1]:6514"},
		{"tcp://siem.example:6514", ""},
		{"tls://siem.example", ""},
		{"siem.example:6514", ""},
		{"tls://u:p@siem.example:6514", ""},
	} {
		got, err := ParseSyslogURL(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("ParseSyslogURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestFrameSyslog checks the frame an RFC 5425 receiver parses: the
// octet count matches, and the header, leaf index and event round-trip.
func TestFrameSyslog(t *testing.T) {
	leaf := testEvent(3).Leaf()
	f := frameSyslog(42, leaf, "host name", 0)
	sp := bytes.IndexByte(f, ' ')
	n, err := strconv.Atoi(string(f[:sp]))
	if err != nil || n != len(f)-sp-1 {
		t.Fatalf("octet count %q for %d bytes", f[:sp], len(f)-sp-1)
	}
	msg := f[sp+1:]
	if !bytes.HasPrefix(msg, []byte("<110>1 2026-01-01T00:00:00.003000Z hostname phivault - AUDIT [phivault@32473 leaf=\"42\"] ")) &&
		!bytes.HasPrefix(msg, []byte("<108>1 2026-01-01T00:00:00.003000Z hostname phivault - AUDIT [phivault@32473 leaf=\"42\"] ")) {
		t.Errorf("header: %q", msg[:min(len(msg), 100)])
	}
	i, js, err := SyslogLeaf(msg)
	if err != nil || i != 42 || !bytes.Equal(js, leaf) {
		t.Errorf("SyslogLeaf = %d, %q, %v", i, js, err)
	}
}

func FuzzSyslogLeaf(f *testing.F) {
	f.Add(frameSyslog(7, testEvent(1).Leaf(), "h", 0))
	f.Add([]byte(`[phivault@32473 leaf="01"] x`))
	f.Add([]byte(`[phivault@32473 leaf="18446744073709551616"] x`))
	f.Fuzz(func(t *testing.T, b []byte) {
		i, js, err := SyslogLeaf(b)
		if err != nil {
			return
		}
		// Whatever parses, re-framed, parses to the same index and body.
		j, js2, err := SyslogLeaf(frameSyslog(i, js, "h", 0))
		if err != nil || j != i || !bytes.Equal(js, js2) {
			t.Fatalf("round trip: %d %q -> %d %q %v", i, js, j, js2, err)
		}
	})
}

// TestSyslogLargeEvent sends a search event naming 3,000 resources (about
// 430 KB, above rsyslog's default frame limit of 200,000 bytes) and then a
// small one: the first arrives shortened, valid JSON with as many entities
// as fit, the count of the others and the leaf hash of the whole; the
// second arrives intact (the stream stays in step).
func TestSyslogLargeEvent(t *testing.T) {
	r := newRsyslog(t)
	r.start()
	ev := testEvent(1)
	for i := range 3000 {
		ev.Entities = append(ev.Entities, fmt.Sprintf("Observation/%08d/_history/1", i))
	}
	var whole struct{ Entity []any }
	if err := json.Unmarshal(ev.Leaf(), &whole); err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	small := testEvent(2).Leaf()
	if err := st.Update(context.Background(), func(w store.Writer) error {
		if _, err := w.AppendAudit(ev.Leaf()); err != nil {
			return err
		}
		_, err := w.AppendAudit(small)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	tc, err := SyslogTLS(filepath.Join(r.dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	sink, err := NewSyslogSink(SyslogConfig{Log: NewProver(st), Store: st, Addr: "127.0.0.1:" + r.port, TLS: tc, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sink.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	r.waitFor(2)
	_, body := r.received()
	if !bytes.Equal(body[1][0], small) {
		t.Errorf("the event after the large one arrived as %.200q", body[1][0])
	}
	var got struct {
		Entity    []any
		Extension []struct {
			URL          string
			ValueInteger int
		}
	}
	if err := json.Unmarshal(body[0][0], &got); err != nil {
		t.Fatalf("shortened event is not JSON: %v", err)
	}
	omitted := -1
	for _, e := range got.Extension {
		if e.URL == "urn:phivault:syslog-omitted-entities" {
			omitted = e.ValueInteger
		}
	}
	if len(got.Entity) < 1000 || len(got.Entity)+omitted != len(whole.Entity) || len(body[0][0]) > 190_000 {
		t.Errorf("shortened event: %d bytes, %d entities kept, %d omitted; want <= 190000 bytes, >= 1000 kept, %d in all", len(body[0][0]), len(got.Entity), omitted, len(whole.Entity))
	}
	b, _ := os.ReadFile(r.out)
	if want := `leafhash="` + hex.EncodeToString(LeafHash(ev.Leaf())) + `"`; !bytes.Contains(b, []byte(want)) {
		t.Errorf("no %s in the received line", want)
	}
}

func FuzzShortenLeaf(f *testing.F) {
	f.Add(testEvent(1).Leaf(), 300)
	f.Add([]byte(`{"entity":[1,2,3],"extension":"x"}`), 10)
	f.Add([]byte(`[]`), 50)
	f.Add([]byte(`null`), 5)
	f.Fuzz(func(t *testing.T, leaf []byte, max int) {
		out := shortenLeaf(leaf, max)
		if !json.Valid(out) {
			t.Fatalf("shortenLeaf(%q, %d) = %q, not JSON", leaf, max, out)
		}
	})
}
