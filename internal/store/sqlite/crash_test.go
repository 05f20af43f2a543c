package sqlite_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// The crash test re-executes the test binary as a child that writes until
// it is killed with SIGKILL; every commit the child acknowledged (printed)
// must be found intact after reopening.
const (
	envCrashDir   = "PHIVAULT_SQLITE_CRASH_DIR"
	envCrashRound = "PHIVAULT_SQLITE_CRASH_ROUND"
)

// crashBody is the deterministic 1-4 KiB body of (id, vid).
func crashBody(id string, vid int64) []byte {
	seed := sha256.Sum256(fmt.Appendf(nil, "%s/%d", id, vid))
	n := 1024 + int(seed[0])*12
	out := make([]byte, 0, n+32)
	for len(out) < n {
		seed = sha256.Sum256(seed[:])
		out = append(out, seed[:]...)
	}
	return out[:n]
}

func crashToken(id string, vid int64) store.Token {
	return store.Token(fmt.Sprintf("tok\x00%s\x00%d", id, vid))
}

// TestCrashChild is the child's body; it only runs when the parent sets
// envCrashDir.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		t.Skip("run by TestCrash")
	}
	round := os.Getenv(envCrashRound)
	b, err := sqlite.Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			id := fmt.Sprintf("r%s-g%d", round, g)
			for vid := int64(1); ; vid++ {
				var idx int64
				err := b.Update(context.Background(), func(w store.Writer) error {
					v := store.Version{Type: "Patient", ID: id, VID: vid, Updated: time.Now(), Body: crashBody(id, vid)}
					if _, err := w.Put(v, []store.Token{crashToken(id, vid), store.Token("all")}); err != nil {
						return err
					}
					if err := w.SetMeta("crash/"+id, []byte(strconv.FormatInt(vid, 10))); err != nil {
						return err
					}
					var err error
					idx, err = w.AppendAudit(fmt.Appendf(nil, "%s/%d", id, vid))
					return err
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, "update:", err)
					os.Exit(2)
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "ack %s %d %d\n", id, vid, idx)
				out.Unlock()
			}
		})
	}
	wg.Wait()
}

type ack struct {
	id       string
	vid, idx int64
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped with -short")
	}
	dir := t.TempDir()
	var acks []ack
	start := time.Now()
	for round := range 20 {
		got := runCrashChild(t, dir, round)
		if len(got) == 0 {
			t.Fatalf("round %d: the child acknowledged nothing", round)
		}
		acks = append(acks, got...)
		verifyAcks(t, dir, acks)
		if t.Failed() {
			t.Fatalf("round %d: acknowledged writes lost", round)
		}
	}
	t.Logf("20 kill -9 rounds, %d acknowledged commits verified, %v", len(acks), time.Since(start).Round(time.Millisecond))
}

// runCrashChild starts a writer child, kills it with SIGKILL a random
// moment after its first acknowledged commit and returns what it acked.
func runCrashChild(t *testing.T, dir string, round int) []ack {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashRound+"="+strconv.Itoa(round))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan struct{})
	var acks []ack
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 4 || f[0] != "ack" {
				continue // test framework output
			}
			vid, _ := strconv.ParseInt(f[2], 10, 64)
			idx, _ := strconv.ParseInt(f[3], 10, 64)
			acks = append(acks, ack{f[1], vid, idx})
			if len(acks) == 1 {
				close(first)
			}
		}
	}()
	select {
	case <-first:
	case <-done:
		_ = cmd.Wait()
		t.Fatalf("round %d: child exited before acknowledging anything", round)
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("round %d: child acknowledged nothing in 10 s", round)
	}
	time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done // the pipe's writer is gone: every printed line is read
	var exitErr *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exitErr) {
		t.Fatalf("round %d: child was not killed: %v", round, err)
	}
	return acks
}

func verifyAcks(t *testing.T, dir string, acks []ack) {
	t.Helper()
	b, err := sqlite.Open(dir)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer b.Close()
	err = b.View(context.Background(), func(r store.Reader) error {
		size, err := r.AuditSize()
		if err != nil {
			return err
		}
		for _, a := range acks {
			v, err := r.Get("Patient", a.id, a.vid)
			if err != nil {
				t.Errorf("acked %s/%d: %v", a.id, a.vid, err)
				continue
			}
			if string(v.Body) != string(crashBody(a.id, a.vid)) {
				t.Errorf("acked %s/%d: body corrupted", a.id, a.vid)
			}
			cur, err := r.Current("Patient", a.id)
			if err != nil || cur.VID < a.vid {
				t.Errorf("acked %s/%d: current is %d, %v", a.id, a.vid, cur.VID, err)
				continue
			}
			m, err := r.Meta("crash/" + a.id)
			if n, _ := strconv.ParseInt(string(m), 10, 64); err != nil || n != cur.VID {
				t.Errorf("acked %s/%d: meta %q, %v; want current version %d", a.id, a.vid, m, err, cur.VID)
			}
			if a.idx >= size {
				t.Errorf("acked %s/%d: audit index %d beyond size %d", a.id, a.vid, a.idx, size)
				continue
			}
			leaf, err := r.AuditLeaves(a.idx, a.idx+1)
			if err != nil || string(leaf[0]) != fmt.Sprintf("%s/%d", a.id, a.vid) {
				t.Errorf("acked %s/%d: audit leaf %d = %q, %v", a.id, a.vid, a.idx, leaf, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	checkIntegrity(t, filepath.Join(dir, sqlite.FileName))
}

// checkIntegrity runs SQLite's own consistency check on the file.
func checkIntegrity(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Errorf("integrity_check = %q, %v", res, err)
	}
}
