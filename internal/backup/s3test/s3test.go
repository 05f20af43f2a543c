// Package s3test gives tests a real S3 server of their own: the Versity S3
// gateway (versitygw) over a temporary directory, with versioning and
// Object Lock, listening on loopback only, stopped when the test ends.
//
// The binary is found as PHIVAULT_VERSITYGW, on PATH, or in $GOPATH/bin
// (`go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`; .ci/run
// installs it). Without it tests skip with that hint; with CI=true they
// fail, so a CI that lost its S3 server cannot pass silently.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Version is the versitygw release the tests are written against.
const Version = "v1.8.0"

// EnvBinary names the environment variable that may point at versitygw.
const EnvBinary = "PHIVAULT_VERSITYGW"

// Server is a running gateway. Its root credentials are the only account:
// in the tests they play the phivault server's own credentials, the
// strongest an attacker on that server could hold.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Client    *minio.Client // a client with the root credentials

	versioning bool
}

// Binary returns the path of versitygw, or skips t (fails under CI=true).
func Binary(t testing.TB) string {
	t.Helper()
	var cands []string
	if p := os.Getenv(EnvBinary); p != "" {
		cands = append(cands, p)
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		cands = append(cands, p)
	}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		cands = append(cands, filepath.Join(gp, "bin", "versitygw"))
	}
	for _, p := range cands {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := "s3test: no versitygw binary (go install github.com/versity/versitygw/cmd/versitygw@" + Version + ", or set " + EnvBinary + ")"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true makes this a failure")
	}
	t.Skip(msg)
	return ""
}

// Start starts a gateway for t with versioning enabled (as Object Lock on
// AWS requires), stopped and removed when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

// StartUnversioned starts a gateway without versioning: Object Lock then
// refuses any write over a locked object, as some S3 servers do.
func StartUnversioned(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

func start(t testing.TB, versioning bool) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	root, vers := filepath.Join(dir, "buckets"), filepath.Join(dir, "versions")
	for _, d := range []string{root, vers} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{AccessKey: "root" + randHex(4), SecretKey: randHex(20), versioning: versioning}
	var lastErr error
	for range 3 { // a free port can be taken between probing and binding
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"--port", addr, "posix", root}
		if versioning {
			args = []string{"--port", addr, "posix", "--versioning-dir", vers, root}
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("s3test: start versitygw: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			cmd.Process.Kill()
			<-exited
		}
		if err := waitReady(addr, exited); err != nil {
			stop()
			lastErr = fmt.Errorf("%v: %s", err, out.String())
			continue
		}
		t.Cleanup(stop)
		s.Endpoint = "http://" + addr
		s.Client, err = minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), BucketLookup: minio.BucketLookupPath})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Fatalf("s3test: versitygw did not start: %v", lastErr)
	return nil
}

// Bucket creates a new bucket; with lock, with Object Lock enabled (and so
// versioning).
func (s *Server) Bucket(t testing.TB, lock bool) string {
	t.Helper()
	ctx := context.Background()
	name := "b" + randHex(6)
	if err := s.Client.MakeBucket(ctx, name, minio.MakeBucketOptions{ObjectLocking: lock}); err != nil {
		t.Fatalf("s3test: make bucket: %v", err)
	}
	if lock && s.versioning {
		if err := s.Client.EnableVersioning(ctx, name); err != nil {
			t.Fatalf("s3test: enable versioning: %v", err)
		}
	}
	return name
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitReady waits (at most 20 s) until the gateway answers HTTP.
func waitReady(addr string, exited <-chan struct{}) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("versitygw exited")
		default:
		}
		if resp, err := c.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("versitygw did not answer within 20 s")
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
