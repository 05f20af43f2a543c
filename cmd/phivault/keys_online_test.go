package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rotLoad reads and writes Patient resources through the FHIR API, as
// clinicians' apps would, while a rotation runs. Seeded patients are
// read; each worker writes its own patients (new compartments first, so
// new data keys are made during the rotation, then updates).
type rotLoad struct {
	c             *http.Client
	base, token   string // base: ".../fhir"
	seeded        int    // patients p0 .. p<seeded-1> exist
	ok, failed    atomic.Int64
	mu            sync.Mutex
	firstFailures []string // up to 5, for the report
}

// seedBundle is a transaction creating patients from .. to-1.
func seedBundle(from, to int) []byte {
	var entries []any
	for i := from; i < to; i++ {
		id := fmt.Sprintf("p%d", i)
		entries = append(entries, map[string]any{
			"resource": map[string]any{"resourceType": "Patient", "id": id, "name": []any{map[string]any{"family": fmt.Sprintf("Seed%d", i)}}},
			"request":  map[string]any{"method": "PUT", "url": "Patient/" + id}})
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
	return b
}

func (l *rotLoad) do(method, rel string, body []byte, want ...int) {
	req, _ := http.NewRequest(method, l.base+"/"+rel, bytes.NewReader(body))
	if l.token != "" {
		req.Header.Set("Authorization", "Bearer "+l.token)
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := l.c.Do(req)
	status := 0
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status = resp.StatusCode
	}
	for _, w := range want {
		if status == w {
			l.ok.Add(1)
			return
		}
	}
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.firstFailures) < 5 {
		l.firstFailures = append(l.firstFailures, fmt.Sprintf("%s %s: status %d, %v", method, rel, status, err))
	}
	l.mu.Unlock()
}

// start runs workers until stop is closed; the returned func waits for
// them.
func (l *rotLoad) start(workers int, stop <-chan struct{}) func() {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				l.do(http.MethodGet, fmt.Sprintf("Patient/p%d", (i*13+w*37)%l.seeded), nil, http.StatusOK)
				id := fmt.Sprintf("w%d-%d", w, i%40)
				body, _ := json.Marshal(map[string]any{"resourceType": "Patient", "id": id, "name": []any{map[string]any{"family": fmt.Sprintf("Load%d", i)}}})
				l.do(http.MethodPut, "Patient/"+id, body, http.StatusOK, http.StatusCreated)
			}
		}()
	}
	return wg.Wait
}

func (l *rotLoad) failures() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.firstFailures, "; ")
}

// TestKeysRotateOnlineHTTPS rotates the KEK of a running server through
// its admin socket ('phivault keys rotate', as an operator runs it) while
// clients read and write over HTTPS: no request fails, every data key
// ends under the new version, the old version is retired online, and the
// data still reads.
func TestKeysRotateOnlineHTTPS(t *testing.T) {
	if testing.Short() {
		t.Skip("serves over HTTPS under load (about 5 s)")
	}
	s := startServe(t)
	const seeded = 300
	if st, body := s.send(t, s.tls, http.MethodPost, s.base+"/fhir", s.op, seedBundle(0, seeded)); st != http.StatusOK {
		t.Fatalf("seed: %d %.300s", st, body)
	}
	l := &rotLoad{c: s.tls, base: s.base + "/fhir", token: s.op, seeded: seeded}
	stop := make(chan struct{})
	wait := l.start(4, stop)
	time.Sleep(300 * time.Millisecond) // load running before the rotation starts
	var statuses []string
	statusDone := make(chan struct{})
	go func() { // an operator watching the rotation
		defer close(statusDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if code, out, _ := runOut("keys", "status", "--data", s.dir); code == exitOK {
				statuses = append(statuses, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	before := l.ok.Load()
	code, out, errs := runOut("keys", "rotate", "--data", s.dir)
	during := l.ok.Load() - before
	time.Sleep(200 * time.Millisecond) // load goes on after the rotation
	close(stop)
	wait()
	<-statusDone
	if code != exitOK || !strings.Contains(out, "KEK version 2 created") {
		t.Fatalf("keys rotate on the running server: exit %d %q %q", code, out, errs)
	}
	if l.failed.Load() != 0 {
		t.Errorf("%d of %d requests failed during the rotation: %s", l.failed.Load(), l.ok.Load()+l.failed.Load(), l.failures())
	}
	if during == 0 {
		t.Error("no request completed while the rotation ran")
	}
	if !strings.Contains(out, "version 1: wraps 0 data keys") || !strings.Contains(out, "version 2 (current)") {
		t.Errorf("after the rotation: %s", out)
	}
	running := 0
	for _, st := range statuses {
		if strings.Contains(st, "RUNNING") {
			running++
		}
	}
	code, out, errs = runOut("keys", "retire", "--data", s.dir, "--version", "1")
	if code != exitOK || strings.Contains(out, "  version 1") || !strings.Contains(out, "KEK version 1 retired") {
		t.Fatalf("retire version 1 online: exit %d %q %q", code, out, errs)
	}
	if code, out, _ := runOut("keys", "status", "--data", s.dir); code != exitOK || !strings.Contains(out, "last rotation: to version 2") {
		t.Errorf("status after the rotation: %q", out)
	}
	// Every patient still reads: cached keys stayed valid, and keys
	// unwrapped from now on use version 2 only.
	for i := range seeded {
		if st, _ := s.fhir(t, http.MethodGet, fmt.Sprintf("Patient/p%d", i), s.op, nil); st != http.StatusOK {
			t.Fatalf("after retiring version 1: Patient/p%d = %d", i, st)
		}
	}
	var rotated, retired bool
	for _, lf := range auditLeavesOf(t, s) {
		rotated = rotated || bytes.Contains(lf, []byte(`"key-rotate"`)) && bytes.Contains(lf, []byte("operator:uid-"))
		retired = retired || bytes.Contains(lf, []byte(`"key-retire"`)) && bytes.Contains(lf, []byte("operator:uid-"))
	}
	if !rotated || !retired {
		t.Errorf("audit: rotation recorded %v, retirement recorded %v; want both naming the operator", rotated, retired)
	}
	t.Logf("%d requests in all, %d while the rotation ran; %d status checks, %d of them during the rotation", l.ok.Load(), during, len(statuses), running)
}
