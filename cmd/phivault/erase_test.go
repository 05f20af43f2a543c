package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
	"github.com/phivault/phivault/internal/store"
)

const eraseBundle = `{"resourceType":"Bundle","type":"transaction","entry":[
{"resource":{"resourceType":"Patient","id":"pat1","name":[{"family":"Zebedeeshred","given":["Quintusshred"]}],"birthDate":"1971-03-04"},"request":{"method":"PUT","url":"Patient/pat1"}},
{"resource":{"resourceType":"Observation","id":"obs1","status":"final","code":{"text":"glucose"},"subject":{"reference":"Patient/pat1"},"valueString":"Zebedeeshred-note"},"request":{"method":"PUT","url":"Observation/obs1"}},
{"resource":{"resourceType":"Patient","id":"pat2","name":[{"family":"Keptalive"}]},"request":{"method":"PUT","url":"Patient/pat2"}}]}`

// keysDir makes a dev-key data directory holding eraseBundle.
func keysDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(t.TempDir(), "b.json")
	os.WriteFile(b, []byte(eraseBundle), 0o600)
	if code := run([]string{"import", "--data", dir, b}, io.Discard, io.Discard); code != exitOK {
		t.Fatalf("import: exit %d", code)
	}
	return dir
}

func runOut(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestErasePatient(t *testing.T) {
	dir := keysDir(t)
	if code, _, _ := runOut("patient", "hold", "--data", dir, "pat1", "--reason", "litigation 42"); code != exitOK {
		t.Fatalf("hold: exit %d", code)
	}
	code, _, errs := runOut("patient", "erase", "--data", dir, "pat1", "--reason", "art. 17 request", "--yes")
	if code != exitFail || !strings.Contains(errs, "legal hold") {
		t.Fatalf("erase under hold: exit %d, %q; want refusal", code, errs)
	}
	if code, _, _ := runOut("patient", "release", "--data", dir, "pat1"); code != exitOK {
		t.Fatal("release failed")
	}
	// Without --yes it asks; a wrong answer erases nothing.
	stdin = strings.NewReader("pat2\n")
	defer func() { stdin = os.Stdin }()
	if code, _, _ := runOut("patient", "erase", "--data", dir, "pat1", "--reason", "art. 17 request"); code != exitUsage {
		t.Fatalf("unconfirmed erase: exit %d", code)
	}
	stdin = strings.NewReader("pat1\n")
	code, out, errs := runOut("patient", "erase", "--data", dir, "pat1", "--reason", "art. 17 request")
	if code != exitOK {
		t.Fatalf("erase: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "erased") {
		t.Errorf("erase said %q", out)
	}
	if code, out, _ := runOut("patient", "erase", "--data", dir, "pat1", "--reason", "again", "--yes"); code != exitOK || !strings.Contains(out, "already erased") {
		t.Errorf("second erase: %d %q", code, out)
	}
	if code, _, _ := runOut("patient", "erase", "--data", dir, "nobody", "--reason", "x", "--yes"); code != exitFail {
		t.Errorf("erase of an unknown patient: exit %d", code)
	}
	if code, _, _ := runOut("patient", "erase", "--data", dir, "pat2", "--yes"); code != exitUsage {
		t.Errorf("erase without --reason: exit %d", code)
	}

	ctx := context.Background()
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	// shredded-keys lists exactly the destroyed keys.
	listed, err := readShredded(dir)
	destroyed, _ := n.barrier.Destroyed(ctx)
	if err != nil || len(listed) != 1 || len(destroyed) != 1 || listed[0] != destroyed[0] {
		t.Errorf("shredded-keys %v (%v); store says %v", listed, err, destroyed)
	}
	// Every stored version: the erased patient's fail with ErrKeyDestroyed,
	// the others open.
	var all []store.Version
	n.db.View(ctx, func(r store.Reader) error {
		all, err = r.History(store.HistoryQuery{})
		return err
	})
	gone := 0
	for _, v := range all {
		_, err := n.barrier.Open(ctx, barrier.Context(tenant, v.Type, v.ID, strconv.FormatInt(v.VID, 10)), v.Body)
		if errors.Is(err, barrier.ErrKeyDestroyed) {
			gone++
			if v.ID != "pat1" && v.ID != "obs1" {
				t.Errorf("%s/%s is unreadable too", v.Type, v.ID)
			}
		}
	}
	if gone != 2 {
		t.Errorf("%d versions unreadable; want 2 (Patient/pat1, Observation/obs1)", gone)
	}
	// The API says 410 Gone for the erased patient's resources, 200 for others.
	c := server.InProcess(n.api("http://phivault/fhir").Handler(), policy.Principal{UserID: "t", Roles: []string{authn.OperatorRole}, Method: "local-cli"})
	for path, want := range map[string]int{"Patient/pat1": 410, "Observation/obs1": 410, "Patient/pat2": 200} {
		resp, err := c.Get("http://phivault/fhir/" + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want || bytes.Contains(body, []byte("Zebedeeshred")) {
			t.Errorf("GET %s = %d %s; want %d", path, resp.StatusCode, body, want)
		}
		if want == 410 && !bytes.Contains(body, []byte("erased")) {
			t.Errorf("GET %s says %s; want 'erased'", path, body)
		}
	}
	// A search that would find the erased patient's resources answers
	// without them (never a 500), and history of an erased resource says 410.
	for path, want := range map[string]int{"Observation?subject=Patient/pat1": 200, "Patient?_id=pat1,pat2": 200, "Observation/obs1/_history": 410} {
		resp, err := c.Get("http://phivault/fhir/" + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want || bytes.Contains(body, []byte("Zebedeeshred")) || bytes.Contains(body, []byte("obs1")) && want == 200 {
			t.Errorf("GET %s = %d %s; want %d without the erased data", path, resp.StatusCode, body, want)
		}
	}
	// The integrity check counts erased versions apart from damage.
	if rep, err := n.records.Check(ctx, 10, nil); err != nil || !rep.OK() || rep.Erased != 2 {
		t.Errorf("check after erase: %+v, %v; want OK with 2 erased versions", rep, err)
	}
	// The audit log records who erased whom and why.
	var leaves [][]byte
	n.db.View(ctx, func(r store.Reader) error {
		size, _ := r.AuditSize()
		leaves, err = r.AuditLeaves(0, size)
		return err
	})
	found, refused := false, false
	for _, l := range leaves {
		if bytes.Contains(l, []byte(`"erase"`)) && bytes.Contains(l, []byte("art. 17 request")) && bytes.Contains(l, []byte("pat1")) && bytes.Contains(l, []byte("operator:uid-")) {
			found = found || bytes.Contains(l, []byte("crypto-shredded"))
			refused = refused || bytes.Contains(l, []byte("refused: legal hold"))
		}
	}
	if !found {
		t.Error("no audit record of the erasure with user, patient and reason")
	}
	if !refused {
		t.Error("no audit record of the erasure refused under the legal hold")
	}
	// No plaintext of the erased patient anywhere in the directory.
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte("Zebedeeshred")) {
				t.Errorf("%s holds the erased patient's name in plaintext", p)
			}
		}
		return nil
	})
}

// TestEraseLockedWithoutSocket: a directory held by a server whose admin
// socket does not answer (starting, or stuck) is not opened behind its
// back; the command says so with a hint. (A running server's socket does
// the erasure: TestEraseOnlineHTTPS.)
func TestEraseLockedWithoutSocket(t *testing.T) {
	dir := keysDir(t)
	lock, err := lockDir(dir) // a server that holds the lock but serves no socket
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	for _, sub := range []string{"erase", "hold", "release"} {
		code, _, errs := runOut("patient", sub, "--data", dir, "pat1", "--reason", "x", "--yes")
		if code != exitFail || !strings.Contains(errs, "admin socket does not answer") || !strings.Contains(errs, "hint:") {
			t.Errorf("patient %s while a server holds the directory: exit %d, %q", sub, code, errs)
		}
	}
}
