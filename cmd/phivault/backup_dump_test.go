package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/phivault/phivault/internal/backup"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// tableRows returns every row of a table of dir's database, each as one
// string, in key order.
func tableRows(t *testing.T, dir, table string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := map[string]string{
		"idx":     "SELECT rtype, rid, token FROM idx ORDER BY rtype, rid, token",
		"current": "SELECT rtype, rid, vid, seq, deleted FROM current ORDER BY rtype, rid",
	}[table]
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, v := range vals {
			if bs, ok := v.([]byte); ok {
				v = hex.EncodeToString(bs)
			}
			fmt.Fprintf(&b, "%v|", v)
		}
		out = append(out, b.String())
	}
	return out
}

// backupSearchIDs runs a FHIR search on an opened dir and returns the ids found.
func backupSearchIDs(t *testing.T, dir, query string) []string {
	t.Helper()
	n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	resp, err := apiClient(n).Get("http://phivault/fhir" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b struct {
		Entry []struct {
			Resource struct{ ID string }
		}
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&b) != nil {
		t.Fatalf("%s: status %d", query, resp.StatusCode)
	}
	var ids []string
	for _, e := range b.Entry {
		ids = append(ids, e.Resource.ID)
	}
	slices.Sort(ids)
	return ids
}

// backupSearchTotal answers query with _summary=count in the directory
// dir (opened offline, as the operator) and returns the total.
func backupSearchTotal(t *testing.T, dir, query string) int {
	t.Helper()
	n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	resp, err := apiClient(n).Get("http://phivault/fhir" + query + "&_summary=count")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b struct{ Total *int }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&b) != nil || b.Total == nil {
		t.Fatalf("%s: status %d, or no total", query, resp.StatusCode)
	}
	return *b.Total
}

// TestBackupRefusesAnUncoveredTable: a table the dump format does not know
// would be lost by a restore, so the backup fails and names it.
func TestBackupRefusesAnUncoveredTable(t *testing.T) {
	f := newBackupFixture(t, 1)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(f.data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE consent_cache (k TEXT PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, _, errOut := runCLI("backup", "create", "--data", f.data, "--repo", f.repo, "--recipient", f.recipient)
	if code != exitFail || !strings.Contains(errOut, "does not cover: consent_cache") {
		t.Fatalf("backup of a store with an unknown table: exit %d %s", code, errOut)
	}
	if ids, _ := readerFor(t, f).Snapshots(); len(ids) != 0 {
		t.Fatalf("%d snapshots written", len(ids))
	}
}

// restoredDump restores the latest snapshot's files (not yet rebuilt).
func restoredDump(t *testing.T, f *backupFixture) string {
	t.Helper()
	rd := readerFor(t, f)
	m, err := rd.Latest()
	if err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "r")
	if err := rd.Restore(context.Background(), m, to); err != nil {
		t.Fatal(err)
	}
	return to
}

// TestRestoreRefusesADifferentIndex: the rebuilt index is checked resource
// by resource against the snapshot, and the rebuilt current-version table
// against its digest; a difference fails the restore by name and count
// instead of serving an index that answers searches differently.
func TestRestoreRefusesADifferentIndex(t *testing.T) {
	f := newBackupFixture(t, 2)
	f.create(t)
	m, err := readerFor(t, f).Latest()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	to := restoredDump(t, f)
	p := filepath.Join(to, dumpDir, "index")
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 1 // the digest of the last resource in key order
	os.WriteFile(p, b, 0o600)
	_, err = rebuildRestored(ctx, to, m, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "differs from the backed-up one for 1 resources") {
		t.Fatalf("restore with a different index digest: %v", err)
	}

	to = restoredDump(t, f)
	facts, err := readFacts(filepath.Join(to, dumpDir))
	if err != nil {
		t.Fatal(err)
	}
	facts.Current[0] ^= 1
	nb, _ := json.Marshal(facts)
	os.WriteFile(filepath.Join(to, dumpDir, factsName), nb, 0o600)
	_, err = rebuildRestored(ctx, to, m, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "current-version table rebuilt from the versions") {
		t.Fatalf("restore with a different current digest: %v", err)
	}
}

// TestRestoreOfAnErasedPatient: an erased patient's resources cannot be
// re-indexed (their data key is destroyed); the restore says so, checks
// everything else, and their resources stay unreadable.
func TestRestoreOfAnErasedPatient(t *testing.T) {
	f := newBackupFixture(t, 3)
	pats := backupSearchIDs(t, f.data, "/Patient")
	if len(pats) != 3 {
		t.Fatalf("%d patients", len(pats))
	}
	code, out, errOut := runCLI("patient", "erase", "--data", f.data, pats[0], "--reason", "test", "--yes")
	if code != exitOK {
		t.Fatalf("erase: %d %s %s", code, out, errOut)
	}
	f.create(t)
	to := filepath.Join(t.TempDir(), "restored")
	code, out, errOut = runCLI("restore", "--repo", f.repo, "--identity", f.idFile, "--to", to)
	if code != exitOK || !strings.Contains(out, "OK:") || !strings.Contains(out, "erased resources not indexed") {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errOut)
	}
	if got := backupSearchIDs(t, to, "/Patient"); !slices.Equal(got, pats[1:]) {
		t.Fatalf("restored patients %v, want %v", got, pats[1:])
	}
}

// TestRestoreOfAPageCopySnapshot: snapshots taken before the dump format
// hold the database file itself; they still restore and check.
func TestRestoreOfAPageCopySnapshot(t *testing.T) {
	f := newBackupFixture(t, 1)
	f.create(t) // the repository and this node's write key
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(f.data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	counts, err := storeCounts(ctx, filepath.Join(f.data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	tree, _, err := auditFacts(ctx, f.data)
	if err != nil {
		t.Fatal(err)
	}
	r, err := openRepoForWrite(f.data, f.repo, nil, "", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := r.Backup(ctx, []backup.Source{
		{Path: sqlite.FileName, Local: filepath.Join(f.data, sqlite.FileName)},
		{Path: keyFileName, Local: filepath.Join(f.data, keyFileName)},
	}, counts, tree)
	if err != nil {
		t.Fatal(err)
	}
	to := f.restore(t, "--snapshot", m.ID)
	if want, got := tableRows(t, f.data, "idx"), tableRows(t, to, "idx"); len(want) == 0 || !slices.Equal(want, got) {
		t.Fatalf("index of the restored page copy: %d entries, want %d", len(got), len(want))
	}
}

// TestRestoreOfASchema1Dump: a snapshot taken before the store kept token
// sets (schema 1) holds the same tables; it restores into this schema, with
// the token sets rebuilt from the index equal to the backed-up store's, and
// date-sorted searches answer as they did.
func TestRestoreOfASchema1Dump(t *testing.T) {
	f := newBackupFixture(t, 3)
	f.create(t)
	m, err := readerFor(t, f).Latest()
	if err != nil {
		t.Fatal(err)
	}
	to := restoredDump(t, f)
	facts, err := readFacts(filepath.Join(to, dumpDir))
	if err != nil {
		t.Fatal(err)
	}
	facts.Schema = 1
	nb, _ := json.Marshal(facts)
	if err := os.WriteFile(filepath.Join(to, dumpDir, factsName), nb, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rebuildRestored(context.Background(), to, m, io.Discard, io.Discard); err != nil {
		t.Fatalf("restore of a schema 1 dump: %v", err)
	}
	toksets := func(dir string) string {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?_pragma=query_only(1)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(`SELECT seq, toks FROM tokset ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		h, n := sha256.New(), 0
		for rows.Next() {
			var seq int64
			var toks []byte
			if err := rows.Scan(&seq, &toks); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(h, "%d:%x\n", seq, toks)
			n++
		}
		return fmt.Sprintf("%d %x", n, h.Sum(nil))
	}
	if got, want := toksets(to), toksets(f.data); got != want || strings.HasPrefix(want, "0 ") {
		t.Errorf("restored token sets %s, backed up %s", got, want)
	}
	for _, q := range []string{"/Observation?_sort=-date&_count=5", "/Encounter?_sort=date&_count=3"} {
		want := backupSearchIDs(t, f.data, q)
		if got := backupSearchIDs(t, to, q); len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("%s: restored %v, backed up %v", q, got, want)
		}
	}
}
