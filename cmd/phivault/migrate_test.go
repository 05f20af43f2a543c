package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
	"github.com/phivault/phivault/internal/synth"
)

// migrateDSN returns a new, empty PostgreSQL schema's DSN (skipping
// without PostgreSQL, failing under CI=true) and its schema name.
func migrateDSN(t *testing.T) (dsn, schema string) {
	t.Helper()
	dsn = pgtest.DSN(t)
	pgStop.Do(func() { atExit(pgtest.Stop) })
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(context.Background(), "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	return dsn, schema
}

// TestMigrateSchema: 'phivault migrate --db' applies the schema as its
// owner and says so, is idempotent, and a runtime role without rights
// gets a one-line error with a hint and changes nothing.
func TestMigrateSchema(t *testing.T) {
	dsn, schema := migrateDSN(t)
	admin := pgtest.AdminDSN(t)
	role := "phivault_mig_" + schema
	pgtest.Exec(t, admin, "CREATE ROLE "+role+" NOLOGIN")
	t.Cleanup(func() { pgtest.Exec(t, admin, "DROP OWNED BY "+role, "DROP ROLE "+role) })
	pgtest.Exec(t, dsn, "GRANT USAGE ON SCHEMA "+schema+" TO "+role)
	rdsn := pgtest.WithParam(dsn, "role", role)

	code, out, errOut := runCLI("migrate", "--db", rdsn)
	if code != exitFail || !strings.Contains(errOut, "may not change the schema (version 0, this phivault needs 1)") ||
		!strings.Contains(errOut, "hint: run 'phivault migrate --db URL' connecting as the schema owner") || strings.Count(errOut, "\n") != 2 {
		t.Fatalf("migrate as the runtime role: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI("migrate", "--db", dsn)
	if code != exitOK || out != "schema version 0 -> 1: applied 1 migrations\n" {
		t.Fatalf("migrate as the owner: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI("migrate", "--db", dsn)
	if code != exitOK || out != "schema version 1: up to date, nothing applied\n" {
		t.Fatalf("second migrate: exit %d\n%s%s", code, out, errOut)
	}
	// The runtime role, once granted, runs on the migrated schema; with
	// nothing pending, migrate only reads, so it succeeds for it too.
	pgtest.Exec(t, dsn, postgres.RuntimeGrants(schema, role)...)
	if code, out, errOut = runCLI("migrate", "--db", rdsn); code != exitOK || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate as the granted runtime role: exit %d\n%s%s", code, out, errOut)
	}
	b, err := postgres.Open(context.Background(), rdsn, postgres.WithoutMigrate())
	if err != nil {
		t.Fatalf("a node as the runtime role on the migrated schema: %v", err)
	}
	b.Close()

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--db", "not a connection string"}, exitUsage, "not a PostgreSQL connection string"},
		{[]string{"--db", "host=/nonexistent-pg-dir port=1 user=x dbname=y password=s3cret-pw"}, exitFail, "cannot connect to host=/nonexistent-pg-dir port=1 user=x dbname=y:"},
		{nil, exitUsage, "nothing to migrate"},
		{[]string{"--from", "x"}, exitUsage, "--from and --to go together"},
	} {
		code, out, errOut := runCLI(append([]string{"migrate"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "hint: ") || strings.Contains(errOut, "s3cret-pw") {
			t.Errorf("migrate %q: exit %d, want %d with %q\n%s%s", tc.args, code, tc.code, tc.want, out, errOut)
		}
	}
}

// snapshot is what a user reads from a store: each patient's current
// body, the ids a search by family name and by subject returns, and the
// number of each type.
type snapshot struct {
	Bodies   map[string]string
	Searches map[string][]string
	Counts   map[string]int
}

func readSnapshot(t *testing.T, dir string) snapshot {
	t.Helper()
	ctx := context.Background()
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	s := snapshot{Bodies: map[string]string{}, Searches: map[string][]string{}, Counts: map[string]int{}}
	for _, typ := range []string{"Patient", "Observation", "Encounter", "Condition"} {
		if s.Counts[typ], err = n.records.Count(ctx, store.MatchQuery{Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := n.records.Match(ctx, store.MatchQuery{Type: "Patient"})
	if err != nil || len(ids) == 0 {
		t.Fatalf("patients: %v %v", ids, err)
	}
	for _, id := range ids {
		e, err := n.records.Read(ctx, "Patient", id)
		if err != nil {
			t.Fatal(err)
		}
		s.Bodies[id] = string(e.Body)
		var p struct {
			Name []struct{ Family string }
		}
		json.Unmarshal(e.Body, &p)
		queries := []string{"Observation?subject=Patient/" + id}
		if len(p.Name) > 0 {
			queries = append(queries, "Patient?name="+url.QueryEscape(p.Name[0].Family))
		}
		for _, q := range queries {
			typ, raw, _ := strings.Cut(q, "?")
			v, _ := url.ParseQuery(raw)
			got, _, err := n.search.Find(ctx, typ, v, 0)
			if err != nil {
				t.Fatalf("search %s: %v", q, err)
			}
			s.Searches[q] = got
		}
	}
	return s
}

// TestMigrateFromEmbedded moves an imported embedded installation to
// PostgreSQL: bad input and a non-empty target are refused with nothing
// written; the move verifies and points the directory at PostgreSQL;
// afterwards the same reads and searches return the same results, the
// audit log verifies with the same root, and new writes work.
func TestMigrateFromEmbedded(t *testing.T) {
	dsn, _ := migrateDSN(t)
	dir := loadedDir(t, 4)
	before := readSnapshot(t, dir)

	// A target that already holds a store is refused; nothing is written.
	used, _ := migrateDSN(t)
	ub, err := postgres.Open(context.Background(), used)
	if err != nil {
		t.Fatal(err)
	}
	ub.Update(context.Background(), func(w store.Writer) error { return w.SetMeta("k", []byte("v")) })
	ub.Close()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--from", dir, "--to", used}, exitUsage, "the target already holds a phivault store"},
		{[]string{"--from", dir, "--to", "nonsense"}, exitUsage, "--to takes a PostgreSQL connection string"},
		{[]string{"--from", dir, "--to", "host=/nonexistent-pg-dir port=1 user=x dbname=y"}, exitFail, "cannot connect to"},
		{[]string{"--from", t.TempDir(), "--to", dsn}, exitUsage, "is not a phivault data directory"},
	}
	for _, tc := range cases {
		code, out, errOut := runCLI(append([]string{"migrate"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "hint: ") {
			t.Errorf("migrate %q: exit %d, want %d with %q\n%s%s", tc.args, code, tc.code, tc.want, out, errOut)
		}
	}
	// A running server's directory is refused.
	lock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("migrate", "--from", dir, "--to", dsn)
	lock.Close()
	if code != exitFail || !strings.Contains(errOut, "a running server holds") {
		t.Errorf("migrate of a held directory: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, storeFileName)); err == nil {
		t.Fatal("a refused migration wrote store.json")
	}
	if n := pgRows(t, dsn, "versions"); n != -1 {
		t.Fatalf("a refused migration created tables in the target (%d versions)", n)
	}
	if n := pgRows(t, used, "meta"); n != 1 {
		t.Fatalf("the non-empty target now holds %d meta rows, want its 1", n)
	}

	code, out, errOut = runCLI("migrate", "--from", dir, "--to", dsn)
	if code != exitOK || !strings.Contains(out, "\nOK: "+dir+" now uses ") {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("migrate:\n%s", out)
	root := regexp.MustCompile(`root ([0-9a-f]{64})`).FindStringSubmatch(out)
	if root == nil {
		t.Fatalf("migrate did not print the audit root:\n%s", out)
	}
	cfg, err := readStoreConfig(dir)
	if err != nil || cfg.Backend != "postgres" {
		t.Fatalf("store.json after the move: %+v %v", cfg, err)
	}

	after := readSnapshot(t, dir)
	if !equalSnapshots(before, after) {
		t.Errorf("reads differ after the move:\nbefore %+v\nafter  %+v", before, after)
	}
	code, out, errOut = runCLI("audit", "verify", "--data", dir)
	if code != exitOK || !strings.Contains(out, "root: "+root[1]) {
		t.Errorf("audit verify on PostgreSQL: exit %d, want root %s\n%s%s", code, root[1], out, errOut)
	}
	if code, out, errOut = runCLI("check", "--data", dir); code != exitOK {
		t.Errorf("check on PostgreSQL: exit %d\n%s%s", code, out, errOut)
	}

	// New writes continue the copied sequences (versions, audit leaves).
	files := []string{"import", "--data", dir}
	for i, b := range synth.Generate(synth.Options{Seed: 99, Patients: 1}) {
		raw, _ := json.Marshal(b)
		f := filepath.Join(t.TempDir(), fmt.Sprintf("new%d.json", i))
		os.WriteFile(f, raw, 0o600)
		files = append(files, f)
	}
	if code, out, errOut = runCLI(files...); code != exitOK {
		t.Fatalf("import after the move: exit %d\n%s%s", code, out, errOut)
	}
	if got := readSnapshot(t, dir).Counts["Patient"]; got != before.Counts["Patient"]+1 {
		t.Errorf("patients after a new import: %d, want %d", got, before.Counts["Patient"]+1)
	}
	if code, out, errOut = runCLI("audit", "verify", "--data", dir); code != exitOK {
		t.Errorf("audit verify after new writes: exit %d\n%s%s", code, out, errOut)
	}
	// The directory now uses PostgreSQL: a second move is refused.
	if code, _, errOut = runCLI("migrate", "--from", dir, "--to", dsn); code != exitUsage || !strings.Contains(errOut, "already uses a PostgreSQL store") {
		t.Errorf("second move: exit %d %s", code, errOut)
	}
}

func equalSnapshots(a, b snapshot) bool {
	if len(a.Bodies) != len(b.Bodies) || len(a.Searches) != len(b.Searches) || len(a.Counts) != len(b.Counts) {
		return false
	}
	for k, v := range a.Bodies {
		if b.Bodies[k] != v {
			return false
		}
	}
	for k, v := range a.Searches {
		if !slices.Equal(v, b.Searches[k]) || len(v) == 0 {
			return false
		}
	}
	for k, v := range a.Counts {
		if b.Counts[k] != v {
			return false
		}
	}
	return true
}

// pgRows counts a table's rows in the schema dsn selects, -1 if the
// table does not exist.
func pgRows(t *testing.T, dsn, table string) int64 {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var exists bool
	if err := c.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		return -1
	}
	var n int64
	if err := c.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAcceptNoPlaintextPostgres is acceptance 2 of issue 9: after an
// embedded installation is moved to PostgreSQL, neither a pg_dump of its
// schema nor any file of the server's data directory (heap, indexes, WAL)
// holds any patient's name, identifier, birth date, address line, phone
// or email, in UTF-8 or UTF-16.
func TestAcceptNoPlaintextPostgres(t *testing.T) {
	dsn, schema := migrateDSN(t)
	dataDir, _ := pgtest.ServerFiles(t)
	opt := synth.Options{Seed: 1, Patients: 60}
	if testing.Short() {
		opt.Patients = 15
	}
	dir := filepath.Join(t.TempDir(), "demo")
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadDemo(dir, opt, io.Discard); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("migrate", "--from", dir, "--to", dsn)
	if code != exitOK {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("migrate:\n%s", out)

	var raw [][]byte
	for b := range synth.Bundles(opt) {
		j, _ := json.Marshal(b)
		raw = append(raw, j)
	}
	// The ids the store assigned to the patients.
	var ids []string
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := c.Query(context.Background(), "SELECT rid FROM current WHERE rtype = 'Patient'")
	ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
	c.Close(context.Background())
	if err != nil || len(ids) != opt.Patients {
		t.Fatalf("patient ids in the target: %d, %v; want %d", len(ids), err, opt.Patients)
	}
	values := patientValues(func(yield func(map[string]any) bool) {
		for b := range synth.Bundles(opt) {
			if !yield(b) {
				return
			}
		}
	})
	s, kept := newLeakScanner(values)
	checkControl(t, s, kept, raw)
	// The audit rows moved as they were stored (compressed): scan the
	// source's leaves uncompressed.
	reportLeaks(t, "audit leaves (uncompressed)", s.scanAudit(t, dir))
	// Control: resource ids are stored in plaintext by design, so finding
	// them proves the dump and the files scanned hold this store.
	idScan, idsKept := newLeakScanner(ids)
	if idsKept == 0 {
		t.Fatalf("no patient id of at least %d bytes to use as a control: %q", minLeakLen, ids)
	}

	admin := pgtest.AdminDSN(t)
	dump := pgtest.Run(t, "pg_dump", "--no-password", "--schema="+schema, "--dbname="+admin)
	var leaks []leak
	s.scan(bytes.NewReader(dump), func(p *leakPattern, off int64) {
		leaks = append(leaks, leak{fmt.Sprintf("pg_dump@%d", off), p.value, p.enc})
	})
	reportLeaks(t, "pg_dump", leaks)
	controlHits := 0
	idScan.scan(bytes.NewReader(dump), func(*leakPattern, int64) { controlHits++ })
	if controlHits == 0 || !bytes.Contains(dump, []byte("COPY "+schema+".versions")) {
		t.Fatalf("the pg_dump output (%d bytes) does not hold the moved store: the scan proves nothing", len(dump))
	}

	// Flush shared buffers to the heap files, then read every file.
	pgtest.Exec(t, admin, "CHECKPOINT")
	leaks, files, size := s.scanTree(t, dataDir)
	reportLeaks(t, "PostgreSQL data directory", leaks)
	idLeaks, _, _ := idScan.scanTree(t, dataDir)
	if len(idLeaks) == 0 {
		t.Fatal("no patient id found in the PostgreSQL data directory: the scan did not see the moved store")
	}
	t.Logf("%d patients: %d values (%d shorter skipped); pg_dump %d KB clean; data directory %d files, %d MB clean",
		opt.Patients, kept, len(values)-kept, len(dump)>>10, files, size>>20)
}

// TestMigrateVerifyFails: a source holding a version that does not
// authenticate (a body sealed for another resource, written behind the
// barrier's back) is copied, fails the decrypt-all check on the target,
// and the move is undone: exit 1 naming the version, the target's tables
// empty again, the directory still on its embedded store and readable.
func TestMigrateVerifyFails(t *testing.T) {
	dsn, _ := migrateDSN(t)
	dir := loadedDir(t, 2)
	ctx := context.Background()
	n, err := openNode(ctx, dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var pat, org store.Version
	err = n.db.View(ctx, func(r store.Reader) error {
		ps, err := r.History(store.HistoryQuery{Type: "Patient", Limit: 1})
		if err != nil || len(ps) == 0 {
			return fmt.Errorf("patients: %d, %v", len(ps), err)
		}
		orgs, err := r.History(store.HistoryQuery{Type: "Organization", Limit: 1})
		if err != nil || len(orgs) == 0 {
			return fmt.Errorf("organizations: %d, %v", len(orgs), err)
		}
		pat, org = ps[0], orgs[0]
		return nil
	})
	if err == nil {
		err = n.db.Update(ctx, func(w store.Writer) error {
			_, err := w.Put(store.Version{Type: pat.Type, ID: pat.ID, VID: pat.VID + 1, Updated: pat.Updated, Body: org.Body}, nil)
			return err
		})
	}
	n.close()
	if err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runCLI("migrate", "--from", dir, "--to", dsn)
	if code != exitFail || !strings.Contains(errOut, "verification failed, the target was emptied: decrypt-all check on the target: 1 problems, first Patient/"+pat.ID) ||
		!strings.Contains(errOut, "hint: "+dir+" still uses its embedded store") || strings.Contains(out, "OK:") {
		t.Fatalf("migrate of a damaged store: exit %d\n%s%s", code, out, errOut)
	}
	for _, table := range storeTables {
		if n := pgRows(t, dsn, table); n != 0 {
			t.Errorf("after a failed verification the target's %s holds %d rows, want 0", table, n)
		}
	}
	if n := pgRows(t, dsn, "audit_head"); n != 1 {
		t.Errorf("audit_head rows: %d", n)
	}
	if cfg, err := readStoreConfig(dir); err != nil || cfg.Backend != "sqlite" {
		t.Errorf("store.json after a failed move: %+v %v", cfg, err)
	}
	if code, _, errOut := runCLI("audit", "verify", "--data", dir); code != exitOK {
		t.Errorf("the source after a failed move: audit verify exit %d %s", code, errOut)
	}
}
