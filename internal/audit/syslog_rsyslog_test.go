package audit

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// rsyslogd returns the path of rsyslogd, skipping the test when it is
// missing (failing under CI=true).
func rsyslogd(t *testing.T) string {
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

// testPKI writes a CA and a server certificate for 127.0.0.1 to dir and
// returns the CA file.
func testPKI(t *testing.T, dir string) string {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test syslog CA"},
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
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	write("cert.pem", "CERTIFICATE", srvDER)
	write("key.pem", "EC PRIVATE KEY", keyDER)
	return filepath.Join(dir, "ca.pem")
}

// rsyslog is a real rsyslogd listening with TLS (gtls) on a fixed port
// and writing the structured data and message of each event, one a line.
type rsyslog struct {
	t         *testing.T
	bin, dir  string
	port, out string
	cmd       *exec.Cmd
}

func newRsyslog(t *testing.T) *rsyslog {
	r := &rsyslog{t: t, bin: rsyslogd(t), dir: t.TempDir()}
	testPKI(t, r.dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.port = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	r.out = filepath.Join(r.dir, "out.log")
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="256k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile=%q
  defaultNetstreamDriverCertFile=%q
  defaultNetstreamDriverKeyFile=%q)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port=%q)
template(name="sdmsg" type="string" string="%%structured-data%% %%msg%%\n")
action(type="omfile" file=%q template="sdmsg")
`, r.dir, filepath.Join(r.dir, "ca.pem"), filepath.Join(r.dir, "cert.pem"), filepath.Join(r.dir, "key.pem"), r.port, r.out)
	if err := os.WriteFile(filepath.Join(r.dir, "rsyslog.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.kill)
	return r
}

func (r *rsyslog) start() {
	r.t.Helper()
	pid := filepath.Join(r.dir, "rsyslog.pid")
	os.Remove(pid)
	r.cmd = exec.Command(r.bin, "-n", "-f", filepath.Join(r.dir, "rsyslog.conf"), "-i", pid)
	errb := new(bytes.Buffer)
	r.cmd.Stdout, r.cmd.Stderr = errb, errb
	r.t.Cleanup(func() {
		if r.t.Failed() {
			r.t.Logf("rsyslogd said: %.2000s", errb.String())
		}
	})
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+r.port); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslogd did not listen on %s: %s", r.port, errb.String())
		}
	}
}

// freeze stops rsyslogd (SIGSTOP): it accepts nothing more from its
// sockets until killed.
func (r *rsyslog) freeze() {
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		r.t.Fatal(err)
	}
}

// kill ends rsyslogd with SIGKILL: whatever it held in memory is lost.
func (r *rsyslog) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// received parses the output file: the leaf indexes in the order they
// arrived and the JSON of each.
func (r *rsyslog) received() ([]uint64, map[uint64][][]byte) {
	b, _ := os.ReadFile(r.out)
	var idx []uint64
	body := map[uint64][][]byte{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		i, js, err := SyslogLeaf(line)
		if err != nil {
			r.t.Fatalf("unparsable line %q: %v", line, err)
		}
		idx = append(idx, i)
		body[i] = append(body[i], js)
	}
	return idx, body
}

// waitFor waits until rsyslog wrote every leaf in [0, n).
func (r *rsyslog) waitFor(n int) {
	r.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, body := r.received()
		if len(body) >= n {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslog received %d distinct events, want %d", len(body), n)
		}
	}
}
