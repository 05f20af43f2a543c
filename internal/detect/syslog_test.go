package detect

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireRsyslogd returns rsyslogd with its TLS driver, skipping the test
// when either is missing (failing under CI=true).
func requireRsyslogd(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("rsyslogd")
	if err != nil {
		p, err = exec.LookPath("/usr/sbin/rsyslogd")
	}
	gtls, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so")
	if err == nil && len(gtls) > 0 {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("rsyslogd or its gtls driver is missing (apt-get install rsyslog rsyslog-gnutls) and CI=true")
	}
	t.Skip("rsyslogd or its gtls driver is missing; apt-get install rsyslog rsyslog-gnutls to run this test")
	return ""
}

// TestSyslogThroughRealRsyslog: alerts reach a real rsyslogd over TLS as
// RFC 5424 messages whose structured data rsyslog parses (the alert id,
// case, rules, delivery seq), with no patient value in them; an alert
// raised while rsyslogd is down reaches it once it is back.
func TestSyslogThroughRealRsyslog(t *testing.T) {
	bin := requireRsyslogd(t)
	dir := t.TempDir()
	tc := testCA(t, dir)
	port := freePort(t)
	out := filepath.Join(dir, "out.log")
	// rsyslog's own property parser splits the structured data out of the
	// message: %structured-data% is empty unless the message is valid
	// RFC 5424.
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile=%q
  defaultNetstreamDriverCertFile=%q
  defaultNetstreamDriverKeyFile=%q)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port=%q)
template(name="t" type="string" string="%%syslogseverity%% %%app-name%% %%msgid%% %%structured-data%% |%%msg%%\n")
action(type="omfile" file=%q template="t")
`, dir, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), port, out)
	if err := os.WriteFile(filepath.Join(dir, "rsyslog.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	var errb bytes.Buffer
	start := func() {
		t.Helper()
		cmd = exec.Command(bin, "-n", "-f", filepath.Join(dir, "rsyslog.conf"), "-i", filepath.Join(dir, "pid"))
		cmd.Stdout, cmd.Stderr = &errb, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
				c.Close()
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("rsyslogd did not listen: %s", errb.String())
			}
		}
	}
	kill := func() {
		if cmd != nil {
			cmd.Process.Kill()
			cmd.Wait()
			cmd = nil
		}
	}
	defer kill()
	start()

	f := newLiveFixture(t, testDirectory)
	ch := &Syslog{Addr: "127.0.0.1:" + port, TLS: tc, Hostname: "node1"}
	defer ch.Close()
	ctx, cancel := context.WithCancel(context.Background())
	r := NewRouter(RouterConfig{Alerts: f.alerts, Name: "syslog", Channel: ch, Poll: 50 * time.Millisecond})
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	defer wg.Wait()
	defer cancel()
	time.Sleep(100 * time.Millisecond)
	f.record(t, read("nurse-ann", "pat-vip"))
	f.record(t, read("nurse-ann", "pat-ann"))
	f.step(t, f.live(nil))
	r.Wake()
	var lines []string
	waitFor := func(id string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			b, _ := os.ReadFile(out)
			lines = strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' })
			if strings.Contains(string(b), `id="`+id+`"`) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("rsyslog never got %s; it wrote %q; rsyslogd: %s", id, lines, errb.String())
			}
		}
	}
	for _, a := range f.list(t) {
		waitFor(a.ID)
	}
	// An alert raised while the syslog server is down arrives when it is
	// back.
	kill()
	f.record(t, read("bob", "pat-vip"))
	f.step(t, f.live(nil))
	r.Wake()
	time.Sleep(time.Second)
	start()
	alerts := f.list(t)
	if len(alerts) != 3 {
		t.Fatalf("alerts: %v", briefs(alerts))
	}
	for _, a := range alerts {
		waitFor(a.ID)
	}
	for _, a := range alerts {
		user := "nurse-ann"
		if a.UserID == "bob" {
			user = "bob"
		}
		var line string
		for _, l := range lines {
			if strings.Contains(l, `[phivaultAlert@32473 id="`+a.ID+`"`) {
				line = l
			}
		}
		if line == "" {
			t.Errorf("alert %s not in rsyslog's output %q", a.ID, lines)
			continue
		}
		sev := map[string]string{"high": "2", "medium": "4"}[a.Severity]
		for _, want := range []string{sev + " phivault ALERT [", `case="` + CaseID(user) + `"`, `rules="` + strings.Join(a.Rules, ",") + `"`,
			`user="` + user + `"`, `patient="Patient/` + a.PatientID + `"`, `seq="`} {
			if !strings.Contains(line, want) {
				t.Errorf("line lacks %q: %s", want, line)
			}
		}
		for _, name := range []string{"Star", "Vera", "Quist"} {
			if strings.Contains(line, name) {
				t.Errorf("the message holds a patient's name %q: %s", name, line)
			}
		}
	}
}

// TestAlertFrameEscapes: a user id cannot break out of its PARAM-VALUE.
func TestAlertFrameEscapes(t *testing.T) {
	d := &Delivery{Seq: 7, Alert: &StoredAlert{ID: "al-1", CaseID: `case-x"] y`, UserID: "x\"] \\y\n", Severity: "low", Rules: []string{"probing"}}}
	fr := string(alertFrame(d, "host name"))
	if !strings.Contains(fr, `user="x\"\] \\y"`) || !strings.Contains(fr, " hostname phivault - ALERT ") {
		t.Errorf("frame: %s", fr)
	}
	var n int
	fmt.Sscanf(fr, "%d ", &n)
	if n != len(fr)-len(fmt.Sprint(n))-1 {
		t.Errorf("frame length %d, message is %d bytes", n, len(fr)-len(fmt.Sprint(n))-1)
	}
}
