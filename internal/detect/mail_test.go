package detect

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// requireAiosmtpd returns a Python interpreter that has aiosmtpd (Debian
// python3-aiosmtpd), skipping the test when there is none (failing under
// CI=true).
func requireAiosmtpd(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import aiosmtpd").Run() == nil {
			return py
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("python3-aiosmtpd is missing (apt-get install python3-aiosmtpd) and CI=true")
	}
	t.Skip("python3-aiosmtpd is missing; apt-get install python3-aiosmtpd to run this test against a real SMTP server")
	return ""
}

// testCA writes a CA and a certificate for 127.0.0.1 (ca.pem, cert.pem,
// key.pem) to dir and returns a TLS configuration that trusts the CA.
func testCA(t *testing.T, dir string) *tls.Config {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvT, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	for name, blk := range map[string]*pem.Block{"ca.pem": {Type: "CERTIFICATE", Bytes: caDER},
		"cert.pem": {Type: "CERTIFICATE", Bytes: srvDER}, "key.pem": {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{RootCAs: pool}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// smtpServer is a real aiosmtpd offering STARTTLS (and requiring it),
// storing each message in a Maildir.
type smtpServer struct {
	t                 *testing.T
	py, dir, port     string
	maildir, cert, ky string
	cmd               *exec.Cmd
	out               bytes.Buffer
}

func newSMTPServer(t *testing.T) (*smtpServer, *tls.Config) {
	s := &smtpServer{t: t, py: requireAiosmtpd(t), dir: t.TempDir(), port: freePort(t)}
	tc := testCA(t, s.dir)
	s.maildir = filepath.Join(s.dir, "Maildir")
	t.Cleanup(s.stop)
	return s, tc
}

func (s *smtpServer) addr() string { return "127.0.0.1:" + s.port }

func (s *smtpServer) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.py, "-m", "aiosmtpd", "-n", "-l", s.addr(), "--tlscert", filepath.Join(s.dir, "cert.pem"),
		"--tlskey", filepath.Join(s.dir, "key.pem"), "-c", "aiosmtpd.handlers.Mailbox", s.maildir)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", s.addr()); err == nil {
			c.Close()
			return
		}
	}
	s.t.Fatalf("aiosmtpd did not start: %s", s.out.String())
}

func (s *smtpServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// messages returns the messages received so far.
func (s *smtpServer) messages() []*mail.Message {
	files, _ := filepath.Glob(filepath.Join(s.maildir, "new", "*"))
	var out []*mail.Message
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		m, err := mail.ReadMessage(bytes.NewReader(b))
		if err == nil {
			out = append(out, m)
		}
	}
	return out
}

func mailBody(t *testing.T, m *mail.Message) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := b.ReadFrom(quotedprintable.NewReader(m.Body)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestMailThroughRealSMTPServer: an alert raised while the SMTP server is
// down is emailed (over STARTTLS, certificate verified) when it comes
// back; the message carries the alert and case ids, rules and the case
// link, and nothing about the patient.
func TestMailThroughRealSMTPServer(t *testing.T) {
	srv, tc := newSMTPServer(t)
	f := newLiveFixture(t, testDirectory)
	m := &Mail{Addr: srv.addr(), From: "phivault@hospital.example", To: []string{"privacy@hospital.example", "soc@hospital.example"},
		TLS: tc, CaseLink: func(id string) string { return "https://phivault.example/fhir/_cases/" + id }}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := NewRouter(RouterConfig{Alerts: f.alerts, Name: "email", Channel: m, Poll: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { r.Run(ctx) })
	time.Sleep(100 * time.Millisecond)
	f.record(t, read("nurse-ann", "pat-vip"))
	f.step(t, f.live(nil))
	r.Wake()
	time.Sleep(500 * time.Millisecond) // refused: the server is down
	srv.start()
	var msgs []*mail.Message
	for deadline := time.Now().Add(20 * time.Second); len(msgs) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		msgs = srv.messages()
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages after the server came back; server log:\n%s", len(msgs), srv.out.String())
	}
	a := f.list(t)[0]
	msg := msgs[0]
	body := mailBody(t, msg)
	if got := msg.Header.Get("Message-ID"); got != "<"+a.ID+".0@hospital.example>" {
		t.Errorf("Message-ID = %q", got)
	}
	if s := msg.Header.Get("Subject"); !strings.Contains(s, a.ID) || !strings.Contains(s, "restricted-patient") {
		t.Errorf("Subject = %q", s)
	}
	for _, want := range []string{a.ID, "case-nurse-ann", "restricted-patient", "nurse-ann", "https://phivault.example/fhir/_cases/case-nurse-ann", a.Severity} {
		if !strings.Contains(body, want) {
			t.Errorf("the body lacks %q:\n%s", want, body)
		}
	}
	raw := fmt.Sprint(msg.Header) + body
	for _, patient := range []string{"pat-vip", "Star", "Vera"} {
		if strings.Contains(raw, patient) {
			t.Errorf("the email names the patient (%q):\n%s", patient, raw)
		}
	}
}

// TestMailValidate: every configuration problem is reported at once, a
// password never goes to a remote server in clear, and it never prints.
func TestMailValidate(t *testing.T) {
	if loopback("10.0.0.1") || !loopback("127.0.0.1") || !loopback("::1") || !loopback("localhost") {
		t.Error("loopback classification")
	}
	bad := &Mail{Addr: "smtp.example:587", From: "x", To: nil, Username: "u", Password: "p", Insecure: true}
	err := bad.Validate()
	if !errors.Is(err, ErrMailConfig) {
		t.Fatalf("Validate = %v", err)
	}
	for _, want := range []string{"sender", "no recipient", "needs TLS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate misses %q: %v", want, err)
		}
	}
	if s := fmt.Sprintf("%v %s %#v", bad.Password, bad.Password, bad.Password); strings.Contains(s, "p\"") || strings.Count(s, "redacted") != 3 {
		t.Errorf("the password prints: %s", s)
	}
}
