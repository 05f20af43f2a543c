package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// importDirectory is a small hospital: one nurse (user nurse-qx5518 on
// Practitioner pr-1) and one patient (pt-1). The ids below that the access
// log uses and that are not resource ids must never reach the data
// directory in plaintext.
const importDirectory = `{"resourceType":"Practitioner","id":"pr-1","identifier":[{"system":"urn:phivault:user","value":"nurse-qx5518"}],"name":[{"family":"Quillfeather","given":["Ottilie"]}]}
{"resourceType":"Patient","id":"pt-1","name":[{"family":"Brackenbury","given":["Ansel"]}],"birthDate":"1960-02-03"}
`

const importLog = `time,user_id,action,patient_id,user_name,user_role,department,resource_type,resource_id,source_ip,workstation,outcome
2026-01-05T10:00:00Z,nurse-qx5518,read,pt-1,Ottilie Quillfeather,nurse,ICU,Observation,obs-1,10.77.31.201,wks-qx-0042,success
2026-01-05T10:05:00Z,nurse-qx5518,read,mrn-zy99173,Ottilie Quillfeather,nurse,ICU,Patient,mrn-zy99173,10.77.31.201,wks-qx-0042,success
2026-01-05T09:00:00Z,stranger-kw8841,read,pt-1,Wendeline Strangeways,clerk,Billing,Patient,pt-1,10.77.31.202,wks-qx-0043,success
05/01/2026 11:00,nurse-qx5518,read,pt-1,,,,,,,,
2026-01-05T11:00:00Z,nurse-qx5518,glance,pt-1,,,,,,,,
2026-01-05T11:00:00Z,nurse-qx5518,read,pt-1
2026-01-05T12:00:00Z,stranger-kw8841,login-failed,,Wendeline Strangeways,clerk,Billing,,,10.77.31.202,wks-qx-0043,failure
2026-01-05T10:00:00Z,nurse-qx5518,read,pt-1,Ottilie Quillfeather,nurse,ICU,Observation,obs-1,10.77.31.201,wks-qx-0042,success
`

// The same four good accesses as FHIR AuditEvents.
const importLogNDJSON = `{"resourceType":"AuditEvent","subtype":[{"code":"read"}],"action":"R","recorded":"2026-01-05T11:00:00+01:00","outcome":"0","agent":[{"requestor":true,"who":{"identifier":{"system":"urn:phivault:user","value":"nurse-qx5518"},"display":"Ottilie Quillfeather"},"role":[{"text":"nurse"}],"location":{"display":"ICU"},"network":{"address":"10.77.31.201"}}],"source":{"site":"wks-qx-0042"},"entity":[{"what":{"reference":"Patient/pt-1"}},{"what":{"reference":"Observation/obs-1/_history/3"}}]}
{"resourceType":"AuditEvent","action":"R","recorded":"2026-01-05T10:05:00Z","outcome":"0","agent":[{"requestor":true,"who":{"reference":"Practitioner/nurse-qx5518","display":"Ottilie Quillfeather"},"role":[{"coding":[{"code":"nurse"}]}],"location":{"display":"ICU"},"network":{"address":"10.77.31.201"}}],"source":{"site":"wks-qx-0042"},"entity":[{"what":{"reference":"Patient/mrn-zy99173"}}]}
{"resourceType":"AuditEvent","action":"R","recorded":"2026-01-05T09:00:00Z","outcome":"0","agent":[{"requestor":true,"who":{"identifier":{"value":"stranger-kw8841"},"display":"Wendeline Strangeways"},"role":[{"text":"clerk"}],"location":{"display":"Billing"},"network":{"address":"10.77.31.202"}}],"source":{"site":"wks-qx-0043"},"entity":[{"what":{"reference":"Patient/pt-1"}}]}
{"resourceType":"AuditEvent","subtype":[{"code":"110122"}],"action":"E","recorded":"2026-01-05T12:00:00Z","outcome":"4","agent":[{"requestor":true,"who":{"identifier":{"value":"stranger-kw8841"},"display":"Wendeline Strangeways"},"role":[{"text":"clerk"}],"location":{"display":"Billing"},"network":{"address":"10.77.31.202"}}],"source":{"site":"wks-qx-0043"}}
{"resourceType":"AuditEvent","action":"R","recorded":"2026-01-05T12:00:00Z"
`

// importDataDir makes a dev-key data directory holding the FHIR resources
// of directory (NDJSON).
func importDataDir(t *testing.T, directory string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "directory.ndjson")
	os.WriteFile(f, []byte(directory), 0o600)
	if code, _, se := runOut("import", "--data", dir, f); code != exitOK {
		t.Fatalf("import: exit %d: %s", code, se)
	}
	return dir
}

func writeTemp(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMonitorImportReportsAndSeals: an import names every bad row by its
// line, counts unknown users and patients, duplicates and out-of-order
// rows, stores each good row once however often it is imported (from CSV
// or as AuditEvents), and leaves no user or patient id of the log in
// plaintext in the data directory.
func TestMonitorImportReportsAndSeals(t *testing.T) {
	dir := importDataDir(t, importDirectory)
	csvFile := writeTemp(t, "access.csv", importLog)
	code, out, errs := runOut("monitor", "import", "--data", dir, csvFile)
	if code != exitPartial {
		t.Fatalf("exit %d, want %d (rows rejected): %s %s", code, exitPartial, out, errs)
	}
	for _, want := range []string{
		`rejected: line 5: time "05/01/2026 11:00" is not RFC 3339`,
		`rejected: line 6: unknown action "glance"`,
		`rejected: line 7: 4 fields, the header has 12`,
		"3 rows were rejected and skipped; the other rows were imported",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, "line 2:") || strings.Contains(errs, "line 9:") {
		t.Errorf("good or duplicate rows reported as rejected:\n%s", errs)
	}
	wantOut := "8 rows read: 3 rejected, 1 duplicate rows in the file, 1 out of order, 2 rows by 1 users not in the directory, 1 rows with patients not in the store\n" +
		"4 new, 0 already imported\n"
	if out != wantOut {
		t.Errorf("report:\n%s\nwant:\n%s", out, wantOut)
	}

	// The same file again, and the same accesses as AuditEvents: nothing new.
	if code, out, _ := runOut("monitor", "import", "--data", dir, csvFile); code != exitPartial || !strings.HasSuffix(out, "0 new, 4 already imported\n") {
		t.Errorf("second import: exit %d, %q", code, out)
	}
	ndFile := writeTemp(t, "access.ndjson", importLogNDJSON)
	code, out, errs = runOut("monitor", "import", "--data", dir, "--format", "auditevent-ndjson", ndFile)
	if code != exitPartial || !strings.HasSuffix(out, "0 new, 4 already imported\n") || !strings.Contains(errs, "rejected: line 5: not JSON") {
		t.Errorf("AuditEvent import of the same accesses: exit %d\n%s%s", code, out, errs)
	}

	// No id, name, address or workstation from the log is stored in plaintext
	// (pt-1 is a resource id, which the store sees by design).
	secrets := []string{"nurse-qx5518", "stranger-kw8841", "mrn-zy99173", "Strangeways", "Ottilie", "10.77.31.20", "wks-qx-004"}
	var scanned int
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		if bytes.HasPrefix(b, []byte("SQLite format 3")) {
			scanned++
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q in plaintext", p, s)
			}
		}
		return nil
	})
	if scanned == 0 {
		t.Fatal("the scan read no SQLite database file")
	}

	// The import is audited, without patient data.
	code, out, errs = runOut("audit", "export", "--data", dir)
	if code != exitOK {
		t.Fatalf("audit export: exit %d %s", code, errs)
	}
	if n := strings.Count(out, `"monitor-import"`); n != 3 {
		t.Errorf("%d audit records of monitor-import, want 3", n)
	}
}

// TestMonitorImportRefusesUsageErrors: bad flags and unreadable files
// change nothing and say what to do.
func TestMonitorImportRefusesUsageErrors(t *testing.T) {
	dir := importDataDir(t, importDirectory)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--format", "xml", writeTemp(t, "a.csv", importLog)}, exitUsage, "unknown --format"},
		{[]string{filepath.Join(t.TempDir(), "missing.csv")}, exitFail, "no such file"},
		{[]string{writeTemp(t, "h.csv", "when,who\n")}, exitFail, `header lacks the required column "time"`},
		{nil, exitUsage, "exactly one access log"},
	} {
		code, _, errs := runOut(append([]string{"monitor", "import", "--data", dir}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	if code, _, errs := runOut("monitor", "run", "--data", dir, "--out", t.TempDir()); code != exitFail || !strings.Contains(errs, "no access log was imported") {
		t.Errorf("run before any import: exit %d %q", code, errs)
	}
}

// TestMonitorRunOverImported: monitor run --data scores what was imported
// exactly like a run over the file, and a second import of the same file
// changes no alert and no count.
func TestMonitorRunOverImported(t *testing.T) {
	sim := filepath.Join(t.TempDir(), "sim")
	if code, _, se := runOut("simulate", "--seed", "3", "--users", "50", "--patients", "500", "--days", "3", "--out", sim); code != exitOK {
		t.Fatalf("simulate: %s", se)
	}
	d, _ := os.ReadFile(filepath.Join(sim, "directory.ndjson"))
	dir := importDataDir(t, string(d))
	access := filepath.Join(sim, "access.csv")
	if code, _, se := runOut("monitor", "import", "--data", dir, access); code != exitOK {
		t.Fatalf("monitor import: %s", se)
	}
	fileOut, first, second := t.TempDir(), t.TempDir(), t.TempDir()
	if code, _, se := runOut("monitor", "run", "--directory", filepath.Join(sim, "directory.ndjson"), "--access", access, "--out", fileOut); code != exitOK {
		t.Fatalf("monitor run over the file: %s", se)
	}
	code, sum1, se := runOut("monitor", "run", "--data", dir, "--out", first)
	if code != exitOK {
		t.Fatalf("monitor run --data: %s", se)
	}
	if code, out, _ := runOut("monitor", "import", "--data", dir, access); code != exitOK || !strings.Contains(out, "\n0 new, ") {
		t.Fatalf("second import: %q", out)
	}
	code, sum2, se := runOut("monitor", "run", "--data", dir, "--out", second)
	if code != exitOK {
		t.Fatalf("monitor run --data after the second import: %s", se)
	}
	// The counts line (events, rejected, ...) is the same; the rate line differs.
	if l1, l2 := strings.SplitN(sum1, "\n", 3), strings.SplitN(sum2, "\n", 3); l1[0] != l2[0] || l1[1] != l2[1] {
		t.Errorf("counts changed after a second import:\n%s\n%s", sum1, sum2)
	}
	a0, _ := os.ReadFile(filepath.Join(fileOut, "alerts.jsonl"))
	a1, _ := os.ReadFile(filepath.Join(first, "alerts.jsonl"))
	a2, _ := os.ReadFile(filepath.Join(second, "alerts.jsonl"))
	if len(a1) == 0 || !bytes.Equal(a1, a2) {
		t.Errorf("alerts differ after a second import (%d vs %d bytes)", len(a1), len(a2))
	}
	if !bytes.Equal(a0, a1) {
		t.Errorf("alerts over the store differ from alerts over the file (%d vs %d bytes)", len(a1), len(a0))
	}
}

// TestMonitorImportRefusesWhileServed: with the data directory held by a
// server (its lock taken), the import refuses with a hint and stores
// nothing.
func TestMonitorImportRefusesWhileServed(t *testing.T) {
	dir := importDataDir(t, importDirectory)
	lock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errs := runOut("monitor", "import", "--data", dir, writeTemp(t, "a.csv", importLog))
	lock.Close()
	if code != exitFail || !strings.Contains(errs, "a server holds") || !strings.Contains(errs, "hint: stop the server") {
		t.Fatalf("exit %d, %q; want a refusal with a hint", code, errs)
	}
	if code, _, errs := runOut("monitor", "run", "--data", dir, "--out", t.TempDir()); code != exitFail || !strings.Contains(errs, "no access log was imported") {
		t.Errorf("after the refused import: exit %d %q", code, errs)
	}
}
