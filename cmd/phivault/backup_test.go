package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/backup"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// backupFixture is a loaded data directory, an identity file and a
// repository path.
type backupFixture struct {
	data, repo, idFile, recipient string
}

func newBackupFixture(t *testing.T, patients int) *backupFixture {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f := &backupFixture{data: loadedDir(t, patients), repo: filepath.Join(t.TempDir(), "repo"),
		idFile: filepath.Join(t.TempDir(), "officer.key"), recipient: id.Recipient().String()}
	if err := os.WriteFile(f.idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *backupFixture) create(t *testing.T) string {
	t.Helper()
	code, out, errOut := runCLI("backup", "create", "--data", f.data, "--repo", f.repo, "--recipient", f.recipient)
	if code != exitOK {
		t.Fatalf("backup create: exit %d\n%s%s", code, out, errOut)
	}
	return out
}

func (f *backupFixture) restore(t *testing.T, extra ...string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "restored")
	code, out, errOut := runCLI(append([]string{"restore", "--repo", f.repo, "--identity", f.idFile, "--to", to}, extra...)...)
	if code != exitOK || !strings.Contains(out, "OK:") {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errOut)
	}
	return to
}

// everything returns every stored version and audit leaf of dir.
func everything(t *testing.T, dir string) ([]store.Version, [][]byte) {
	t.Helper()
	ctx := context.Background()
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	var vs []store.Version
	var leaves [][]byte
	err = n.db.View(ctx, func(r store.Reader) error {
		var err error
		if vs, err = r.History(store.HistoryQuery{}); err != nil {
			return err
		}
		size, err := r.AuditSize()
		if err != nil {
			return err
		}
		leaves, err = r.AuditLeaves(0, size)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return vs, leaves
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	f := newBackupFixture(t, 5)
	out := f.create(t)
	if !strings.Contains(out, "created repository") || !strings.Contains(out, "snapshot ") {
		t.Fatalf("create said: %s", out)
	}
	to := f.restore(t)
	wantV, wantL := everything(t, f.data)
	gotV, gotL := everything(t, to)
	if len(wantV) < 100 || len(wantL) == 0 {
		t.Fatalf("too little loaded: %d versions, %d audit leaves", len(wantV), len(wantL))
	}
	if d := cmp.Diff(wantV, gotV); d != "" {
		t.Fatalf("restored versions differ (-want +got):\n%.2000s", d)
	}
	if d := cmp.Diff(wantL, gotL); d != "" {
		t.Fatalf("restored audit leaves differ")
	}
	// The index is rebuilt on restore: it must be the backed-up one, entry
	// for entry, and answer searches the same.
	wantIdx, gotIdx := tableRows(t, f.data, "idx"), tableRows(t, to, "idx")
	if len(wantIdx) < 1000 || !slices.Equal(wantIdx, gotIdx) {
		t.Fatalf("restored index: %d entries, the original has %d (or they differ)", len(gotIdx), len(wantIdx))
	}
	if want, got := tableRows(t, f.data, "current"), tableRows(t, to, "current"); !slices.Equal(want, got) {
		t.Fatal("restored current-version table differs")
	}
	for _, q := range []string{"/Observation?status=final&_count=500", "/Patient?gender=female", "/Condition?_lastUpdated=gt2000-01-01&_count=500"} {
		want, got := backupSearchIDs(t, f.data, q), backupSearchIDs(t, to, q)
		if len(want) == 0 || !slices.Equal(want, got) {
			t.Fatalf("%s: restored server found %d resources, the original %d", q, len(got), len(want))
		}
	}
	for _, name := range []string{keyFileName, "tls/cert.pem"} {
		a, _ := os.ReadFile(filepath.Join(f.data, name))
		b, err := os.ReadFile(filepath.Join(to, name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s not restored identically (%v)", name, err)
		}
	}
	code, vout, verr := runCLI("backup", "verify", "--repo", f.repo, "--identity", f.idFile, "--read-data")
	if code != exitOK || !strings.Contains(vout, "OK:") {
		t.Fatalf("verify: %d %s %s", code, vout, verr)
	}
	// The node's write key alone checks manifests and sizes.
	code, vout, verr = runCLI("backup", "verify", "--repo", f.repo, "--data", f.data)
	if code != exitOK {
		t.Fatalf("verify with the write key: %d %s %s", code, vout, verr)
	}
}

// apiClient is an in-process FHIR client on an opened node.
func apiClient(n *node) *http.Client {
	p := policy.Principal{UserID: "operator:test", Roles: []string{authn.OperatorRole}, Method: "local-cli"}
	return server.InProcess(n.api("http://phivault/fhir").Handler(), p)
}

func send(c *http.Client, method, url string, body any) (int, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, "http://phivault/fhir"+url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestBackupIncremental(t *testing.T) {
	f := newBackupFixture(t, 20)
	f.create(t)
	changed, total := changeOnePercent(t, f.data)
	out := f.create(t)
	var snap string
	var files, chunks, newChunks int
	var bytesAll, bytesNew, written int64
	var ratio float64
	fmt.Sscanf(out, "snapshot %s %d files, %d chunks (%d new), %d bytes (%d new, ratio %f), %d bytes written",
		&snap, &files, &chunks, &newChunks, &bytesAll, &bytesNew, &ratio, &written)
	t.Logf("changed %d of %d versions; second backup: %s", changed, total, out)
	// The snapshot is a logical dump ordered so that a change costs about
	// its size (docs/backup.md); a page copy of the database cost 51.5%
	// here, scattered over the blind-index B-tree.
	if bytesAll == 0 || ratio > 0.10 || bytesNew == 0 {
		t.Fatalf("the second backup added %.4f of the data (%d of %d bytes) after changing %d of %d versions", ratio, bytesNew, bytesAll, changed, total)
	}
	// Both snapshots restore and verify.
	rd := readerFor(t, f)
	ids, _ := rd.Snapshots()
	if len(ids) != 2 {
		t.Fatalf("%d snapshots", len(ids))
	}
	for _, id := range ids {
		f.restore(t, "--snapshot", id)
	}
}

// changeOnePercent updates every hundredth current resource (by sequence)
// through the API (language set to "en") and returns how many it changed
// and how many current resources there were.
func changeOnePercent(t testing.TB, dir string) (changed, total int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var pick [][2]string
	rows, err := db.Query("SELECT rtype, rid FROM current WHERE deleted = 0 ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var typ, id string
		if err := rows.Scan(&typ, &id); err != nil {
			t.Fatal(err)
		}
		if total%100 == 0 {
			pick = append(pick, [2]string{typ, id})
		}
		total++
	}
	rows.Close()
	db.Close()
	ctx := context.Background()
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	c := apiClient(n)
	for _, p := range pick {
		e, err := n.records.Read(ctx, p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		var res map[string]any
		json.Unmarshal(e.Body, &res)
		res["language"] = "en"
		delete(res, "meta")
		if code, err := send(c, http.MethodPut, "/"+p[0]+"/"+p[1], res); err != nil || code >= 300 {
			t.Fatalf("update %s: %d %v", p[0], code, err)
		}
		changed++
	}
	return changed, total
}

func readerFor(t *testing.T, f *backupFixture) *backup.Reader {
	t.Helper()
	b, _ := os.ReadFile(f.idFile)
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	rd, err := backup.OpenReader(f.repo, ids)
	if err != nil {
		t.Fatal(err)
	}
	return rd
}

// TestBackupWhileWriting takes a backup while transactions of two
// resources each commit continuously; the restore must hold every pair
// whole or not at all, and its audit log must verify (restore checks).
func TestBackupWhileWriting(t *testing.T) {
	f := newBackupFixture(t, 3)
	ctx := context.Background()
	n, err := openNode(ctx, f.data, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	pw := startPairWriters(t, apiClient(n), 2)
	for pw.committed.Load() < 5 {
		time.Sleep(time.Millisecond)
	}
	r, err := openRepoForWrite(f.data, f.repo, []string{f.recipient}, "", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := createSnapshot(ctx, f.data, r)
	before := pw.committed.Load()
	for pw.committed.Load() < before+5 && !t.Failed() {
		time.Sleep(time.Millisecond)
	}
	pw.halt()
	n.close()
	if err != nil {
		t.Fatal(err)
	}
	to := f.restore(t, "--snapshot", m.ID)
	expectWholePairs(t, to, pw.committed.Load())
}

// pairWriters commit transaction bundles of two Observations (code text
// "pair-W-I", W the writer) through an API client until halt.
type pairWriters struct {
	stop      atomic.Bool
	wg        sync.WaitGroup
	committed atomic.Int64
}

func startPairWriters(t *testing.T, c *http.Client, writers int) *pairWriters {
	p := &pairWriters{}
	for w := range writers {
		p.wg.Go(func() {
			for i := 0; !p.stop.Load(); i++ {
				tag := fmt.Sprintf("pair-%d-%d", w, i)
				obs := map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": tag}}
				entry := map[string]any{"resource": obs, "request": map[string]any{"method": "POST", "url": "Observation"}}
				bundle := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{entry, entry}}
				if code, err := send(c, http.MethodPost, "", bundle); err != nil || code != http.StatusOK {
					t.Errorf("transaction: %d %v", code, err)
					return
				}
				p.committed.Add(1)
			}
		})
	}
	return p
}

// halt stops the writers and waits for them.
func (p *pairWriters) halt() { p.stop.Store(true); p.wg.Wait() }

// expectWholePairs requires the data directory dir (a restore of a
// snapshot taken while pairWriters ran) to hold every transaction whole
// and some but not all of the committed ones: a point in time during the
// writes.
func expectWholePairs(t *testing.T, dir string, committed int64) {
	t.Helper()
	rn, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer rn.close()
	obs, err := rn.records.History(context.Background(), store.HistoryQuery{Type: "Observation"})
	if err != nil {
		t.Fatal(err)
	}
	pairs := map[string]int{}
	for _, e := range obs {
		var res struct{ Code struct{ Text string } }
		json.Unmarshal(e.Body, &res)
		if strings.HasPrefix(res.Code.Text, "pair-") {
			pairs[res.Code.Text]++
		}
	}
	for tag, k := range pairs {
		if k != 2 {
			t.Errorf("transaction %s is %d of 2 resources in the backup", tag, k)
		}
	}
	t.Logf("%d transactions in the snapshot, %d committed by the end", len(pairs), committed)
	if len(pairs) == 0 || int64(len(pairs)) >= committed {
		t.Fatalf("the snapshot holds %d transactions of %d: not a point in time during the writes", len(pairs), committed)
	}
}

func TestBackupCLIErrors(t *testing.T) {
	f := newBackupFixture(t, 2)
	code, _, errOut := runCLI("backup", "create", "--data", f.data, "--repo", f.repo)
	if code != exitUsage || !strings.Contains(errOut, "no recipient") {
		t.Fatalf("create without recipients: %d %s", code, errOut)
	}
	f.create(t)
	stranger, _ := age.GenerateX25519Identity()
	other := filepath.Join(t.TempDir(), "stranger.key")
	os.WriteFile(other, []byte(stranger.String()), 0o600)
	to := filepath.Join(t.TempDir(), "r")
	code, _, errOut = runCLI("restore", "--repo", f.repo, "--identity", other, "--to", to)
	if code != exitKeys || !strings.Contains(errOut, "none of the given identities") {
		t.Fatalf("restore with a stranger's identity: %d %s", code, errOut)
	}
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Fatal("a refused restore created its directory")
	}
	// Flip a byte in the first chunk of the database: verify names it,
	// restore refuses and leaves nothing.
	m, err := readerFor(t, f).Latest()
	if err != nil {
		t.Fatal(err)
	}
	c := m.Files[0].Chunks[0]
	p := filepath.Join(f.repo, "data", c.ID[:2], c.ID)
	b, _ := os.ReadFile(p)
	b[len(b)-20] ^= 1
	os.Remove(p)
	os.WriteFile(p, b, 0o600)
	code, out, _ := runCLI("backup", "verify", "--repo", f.repo, "--identity", f.idFile, "--read-data")
	want := fmt.Sprintf("DAMAGED snapshot %s, file %s, chunk 0 (%s)", m.ID, m.Files[0].Path, c.ID[:16])
	if code != exitFail || !strings.Contains(out, want) {
		t.Fatalf("verify of a flipped chunk: %d\n%s\nwant %q", code, out, want)
	}
	code, _, errOut = runCLI("restore", "--repo", f.repo, "--identity", f.idFile, "--to", to)
	if code != exitFail || !strings.Contains(errOut, "nothing restored") || !strings.Contains(errOut, "chunk 0") {
		t.Fatalf("restore of a damaged snapshot: %d %s", code, errOut)
	}
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Fatal("a failed restore left files")
	}
}
