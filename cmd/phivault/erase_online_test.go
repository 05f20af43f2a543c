package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/phivault/phivault/internal/backup"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// The erased patient's values: none may come back from any API path, nor
// be found in any file, after the erasure.
var shredMarkers = []string{"Zebedeeshred", "Quintusshred", "MRN-SHRED-7731", "1971-03-04", "glucose-note-shred"}

// The erased patient pat1 has obs1; pat2 is kept, and its obs2 points at
// obs1 (has-member) while obs1 names pat2 as performer, so _include,
// _revinclude and pat2's $everything reach the erased patient's data.
const shredBundle = `{"resourceType":"Bundle","type":"transaction","entry":[
{"resource":{"resourceType":"Patient","id":"pat1","name":[{"family":"Zebedeeshred","given":["Quintusshred"]}],"birthDate":"1971-03-04",
  "identifier":[{"system":"urn:oid:1.2.3","value":"MRN-SHRED-7731"}]},"request":{"method":"PUT","url":"Patient/pat1"}},
{"resource":{"resourceType":"Observation","id":"obs1","status":"final","code":{"text":"glucose"},"subject":{"reference":"Patient/pat1"},
  "performer":[{"reference":"Patient/pat2"}],"valueString":"glucose-note-shred"},"request":{"method":"PUT","url":"Observation/obs1"}},
{"resource":{"resourceType":"Patient","id":"pat2","name":[{"family":"Keptalive"}]},"request":{"method":"PUT","url":"Patient/pat2"}},
{"resource":{"resourceType":"Observation","id":"obs2","status":"final","code":{"text":"panel"},"subject":{"reference":"Patient/pat2"},
  "hasMember":[{"reference":"Observation/obs1"}]},"request":{"method":"PUT","url":"Observation/obs2"}}]}`

// shredPaths are the API paths that show the erased patient's data before
// the erasure and must show none after it.
var shredPaths = []string{
	"Patient/pat1", "Patient/pat1/_history/1", "Patient/pat1/_history", "Observation/obs1", "Observation/obs1/_history/1",
	"Patient?name=Zebedeeshred", "Patient?identifier=" + url.QueryEscape("urn:oid:1.2.3|MRN-SHRED-7731"), "Patient?birthdate=1971-03-04",
	"Patient?_id=pat1,pat2", "Observation?subject=Patient/pat1", "Patient/pat1/$everything", "Patient/pat2/$everything",
	"Observation?_id=obs2&_include=Observation:has-member", "Patient?_id=pat2&_revinclude=Observation:performer",
	"Observation/_history", "Patient/_history", "_history",
}

// TestEraseOnlineHTTPS erases a patient through the running server's admin
// socket and checks, over HTTPS, that no API path returns its data; that
// no file holds it readable; that a backup from before the erasure,
// restored afterwards, cannot show it; and that a legal hold refuses.
func TestEraseOnlineHTTPS(t *testing.T) {
	if testing.Short() {
		t.Skip("serves over HTTPS, exports, backs up and restores (about 10 s)")
	}
	s := startServe(t)
	if st, body := s.send(t, s.tls, http.MethodPost, s.base+"/fhir", s.op, []byte(shredBundle)); st != http.StatusOK {
		t.Fatalf("load: %d %s", st, body)
	}
	// Control: every path shows the patient's data before the erasure
	// (pat2's $everything follows subject references only: checked after).
	for _, p := range shredPaths {
		if p == "Patient/pat2/$everything" {
			continue
		}
		if st, body := s.fhir(t, http.MethodGet, p, s.op, nil); st != http.StatusOK || !containsAny(body, shredMarkers) {
			t.Errorf("control: GET %s = %d without the patient's data; the check after the erasure would prove nothing", p, st)
		}
	}
	if body := s.export(t); !containsAny(body, shredMarkers) {
		t.Error("control: the bulk export does not hold the patient's data")
	}
	wrapped := wrappedKeyOf(t, s.dir, "Patient", "pat1")

	// A backup taken before the erasure.
	officer, _ := age.GenerateX25519Identity()
	idFile := filepath.Join(t.TempDir(), "officer.key")
	os.WriteFile(idFile, []byte(officer.String()+"\n"), 0o600)
	repo := filepath.Join(t.TempDir(), "repo")
	if code, out, errs := runOut("backup", "create", "--data", s.dir, "--repo", repo, "--recipient", officer.Recipient().String()); code != exitOK {
		t.Fatalf("backup create: %d %s %s", code, out, errs)
	}

	// Legal hold, through the socket: the erasure is refused and audited.
	if code, out, errs := runOut("patient", "hold", "--data", s.dir, "pat1", "--reason", "litigation 42"); code != exitOK || !strings.Contains(out, "legal hold") {
		t.Fatalf("hold: %d %q %q", code, out, errs)
	}
	code, _, errs := runOut("patient", "erase", "--data", s.dir, "pat1", "--reason", "art. 17 request", "--yes")
	if code != exitFail || !strings.Contains(errs, "legal hold") || !strings.Contains(errs, "hint:") {
		t.Fatalf("erase under legal hold: exit %d %q; want a refusal with a hint", code, errs)
	}
	if st, body := s.fhir(t, http.MethodGet, "Patient/pat1", s.op, nil); st != http.StatusOK || !strings.Contains(body, "Zebedeeshred") {
		t.Fatalf("after the refused erasure: %d", st)
	}
	if code, _, errs := runOut("patient", "release", "--data", s.dir, "pat1"); code != exitOK {
		t.Fatalf("release: %s", errs)
	}
	// Unconfirmed: nothing erased.
	stdin = strings.NewReader("pat2\n")
	defer func() { stdin = os.Stdin }()
	if code, _, errs := runOut("patient", "erase", "--data", s.dir, "pat1", "--reason", "art. 17 request"); code != exitUsage {
		t.Fatalf("unconfirmed erase: exit %d %s", code, errs)
	}
	if st, _ := s.fhir(t, http.MethodGet, "Patient/pat1", s.op, nil); st != http.StatusOK {
		t.Fatalf("an unconfirmed erasure erased: %d", st)
	}
	stdin = strings.NewReader("pat1\n")
	code, out, errs := runOut("patient", "erase", "--data", s.dir, "pat1", "--reason", "art. 17 request")
	if code != exitOK || !strings.Contains(out, "erased") {
		t.Fatalf("erase on the running server: exit %d %q %q", code, out, errs)
	}

	// At once, on the running server: no path returns the patient's data.
	for _, p := range shredPaths {
		st, body := s.fhir(t, http.MethodGet, p, s.op, nil)
		body = withoutLinks(t, body) // a searchset's self link repeats the query: the client's own words
		if st >= 500 || containsAny(body, shredMarkers) || strings.Contains(body, `"id":"pat1"`) || strings.Contains(body, `"id":"obs1"`) {
			t.Errorf("after the erasure GET %s = %d %.400s", p, st, body)
		}
	}
	if st, body := s.fhir(t, http.MethodGet, "Patient/pat2", s.op, nil); st != http.StatusOK || !strings.Contains(body, "Keptalive") {
		t.Errorf("the other patient is gone too: %d", st)
	}
	if body := s.export(t); containsAny(body, shredMarkers) || strings.Contains(body, `"id":"obs1"`) {
		t.Errorf("the bulk export after the erasure holds the patient's data: %.400s", body)
	}
	// The access report is excepted (it lists who accessed the record:
	// ids, never data); it must hold no data either.
	if _, body := s.fhir(t, http.MethodGet, "Patient/pat1/$access-report", s.op, nil); containsAny(body, shredMarkers) {
		t.Errorf("the access report holds the patient's data: %.400s", body)
	}
	// The audit log names who erased whom and why, and the refusal.
	leaves := auditLeavesOf(t, s)
	var erased, refused bool
	for _, l := range leaves {
		if !bytes.Contains(l, []byte(`"erase"`)) || !bytes.Contains(l, []byte("pat1")) || !bytes.Contains(l, []byte("operator:uid-")) {
			continue
		}
		erased = erased || bytes.Contains(l, []byte("crypto-shredded; reason: art. 17 request"))
		refused = refused || bytes.Contains(l, []byte("refused: legal hold"))
	}
	if !erased || !refused {
		t.Errorf("audit: erasure recorded %v, refusal under hold recorded %v; want both with operator, patient and reason", erased, refused)
	}

	// Raw scan: no file holds the patient's values, and the wrapped key
	// that could decrypt them is gone from the database and its WAL.
	wantNoBytes(t, s.dir, wrapped)

	// The backup from before the erasure, restored now, cannot show it.
	to := filepath.Join(t.TempDir(), "restored")
	code, out, errs = runOut("restore", "--repo", repo, "--identity", idFile, "--to", to, "--shredded-keys", filepath.Join(s.dir, shreddedName))
	if code != exitOK || !strings.Contains(out, "erasures: 1 data keys erased after the snapshot destroyed again") {
		t.Fatalf("restore: exit %d %s %s", code, out, errs)
	}
	assertErasedIn(t, to)
	// Without --shredded-keys, the repository's own list (brought up to
	// date by the next backup) is enough.
	if code, out, errs := runOut("backup", "create", "--data", s.dir, "--repo", repo); code != exitOK || !strings.Contains(out, "erased data keys recorded in the repository: 1 new") {
		t.Fatalf("second backup: %d %s %s", code, out, errs)
	}
	to2 := filepath.Join(t.TempDir(), "restored2")
	code, out, errs = runOut("restore", "--repo", repo, "--identity", idFile, "--to", to2, "--snapshot", oldestSnapshot(t, repo, idFile))
	if code != exitOK || !strings.Contains(out, "erasures: 1 data keys") {
		t.Fatalf("restore of the old snapshot with the repository's list: exit %d %s %s", code, out, errs)
	}
	assertErasedIn(t, to2)
}

// withoutLinks returns a FHIR JSON body without its top-level "link"
// element.
func withoutLinks(t *testing.T, body string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return body
	}
	delete(m, "link")
	b, _ := json.Marshal(m)
	return string(b)
}

func containsAny(s string, markers []string) bool {
	for _, m := range markers {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// export runs a system-level bulk export to the end and returns every
// output file's content.
func (s *liveServer) export(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.base+"/fhir/$export", nil)
	req.Header.Set("Authorization", "Bearer "+s.op)
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", "respond-async")
	resp, err := s.tls.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	poll := resp.Header.Get("Content-Location")
	if resp.StatusCode != http.StatusAccepted || poll == "" {
		t.Fatalf("export kick-off: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		st, body := s.send(t, s.tls, http.MethodGet, poll, s.op, nil)
		if st == http.StatusAccepted && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if st != http.StatusOK {
			t.Fatalf("export status: %d %s", st, body)
		}
		var m struct{ Output, Error []struct{ URL string } }
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		var all strings.Builder
		for _, f := range append(m.Output, m.Error...) {
			st, b := s.send(t, s.tls, http.MethodGet, f.URL, s.op, nil)
			if st != http.StatusOK {
				t.Fatalf("export file: %d", st)
			}
			all.WriteString(b)
		}
		return all.String()
	}
}

// wrappedKeyOf returns the wrapped data key (as stored, base64 in its
// record) that seals the latest version of type/id in dir's database.
func wrappedKeyOf(t *testing.T, dir, typ, id string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var body []byte
	if err := db.QueryRow(`SELECT body FROM versions WHERE rtype = ? AND rid = ? ORDER BY vid DESC LIMIT 1`, typ, id).Scan(&body); err != nil {
		t.Fatal(err)
	}
	var kid barrier.KeyID
	copy(kid[:], body[2:2+barrier.KeyIDSize])
	var rec []byte
	if err := db.QueryRow(`SELECT value FROM meta WHERE key = ?`, "key/"+kid.String()).Scan(&rec); err != nil {
		t.Fatal(err)
	}
	var r struct{ Wrapped struct{ Blob []byte } }
	if err := json.Unmarshal(rec, &r); err != nil || len(r.Wrapped.Blob) == 0 {
		t.Fatalf("key record of %s/%s: %s, %v", typ, id, rec, err)
	}
	return base64.StdEncoding.EncodeToString(r.Wrapped.Blob)
}

// wantNoBytes scans every file under dir for the patient's values and for
// the wrapped key (base64 as stored, and raw).
func wantNoBytes(t *testing.T, dir, wrapped string) {
	t.Helper()
	raw, _ := base64.StdEncoding.DecodeString(wrapped)
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, m := range shredMarkers {
			if bytes.Contains(b, []byte(m)) {
				t.Errorf("%s holds %q in plaintext", p, m)
			}
		}
		if bytes.Contains(b, []byte(wrapped)) || bytes.Contains(b, raw) {
			t.Errorf("%s still holds the erased patient's wrapped data key: with the key-encryption key it would decrypt the patient", p)
		}
		return nil
	})
}

// assertErasedIn opens a restored directory and checks that the erased
// patient's versions do not decrypt, the others do, and the API says 410.
func assertErasedIn(t *testing.T, dir string) {
	t.Helper()
	vs, _ := everything(t, dir)
	ctx := context.Background()
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	if len(vs) < 4 {
		t.Fatalf("restored %s holds %d versions", dir, len(vs))
	}
	for _, v := range vs {
		_, err := n.records.Read(ctx, v.Type, v.ID)
		erased := v.ID == "pat1" || v.ID == "obs1"
		if erased != (err != nil) {
			t.Errorf("restored %s: %s/%s read error %v", dir, v.Type, v.ID, err)
		}
	}
}

// auditLeavesOf reads the running server's audit leaves from its database
// (read-only; the server holds the directory), uncompressed.
func auditLeavesOf(t *testing.T, s *liveServer) [][]byte {
	t.Helper()
	return auditLeavesIn(t, s.dir)
}

// auditLeavesIn reads the audit leaves of the SQLite database in data
// directory dir through plain SQL, read-only (a server may hold the
// directory), uncompressed.
func auditLeavesIn(t *testing.T, dir string) [][]byte {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT leaf FROM audit ORDER BY idx`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var l []byte
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		out = append(out, store.UnpackLeaf(l))
	}
	return out
}

// oldestSnapshot returns the id of the repository's first snapshot.
func oldestSnapshot(t *testing.T, repo, idFile string) string {
	t.Helper()
	ids, err := readIdentities(idFile)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := backup.OpenReader(repo, ids)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := rd.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	var best string
	var size uint64
	for _, id := range snaps { // the audit log only grows
		m, err := rd.Manifest(id)
		if err != nil {
			t.Fatal(err)
		}
		if best == "" || uint64(m.Audit.Size) < size {
			best, size = id, uint64(m.Audit.Size)
		}
	}
	return best
}
