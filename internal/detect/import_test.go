package detect

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/audit"
)

const importCSV = `time,user_id,action,patient_id,user_name,user_role,department,resource_type,resource_id,source_ip,workstation,outcome
2026-01-05T10:00:00Z,u1,read,p1,Ann Lee,nurse,ICU,Observation,o1,10.0.0.1,ws1,success
2026-01-05T09:00:00+01:00,u1,read,p2,Ann Lee,nurse,ICU,Patient,p2,10.0.0.1,ws1,success
yesterday,u1,read,p1,Ann Lee,nurse,ICU,Patient,p1,10.0.0.1,ws1,success
2026-01-05 11:00:00,u1,read,p1,Ann Lee,nurse,ICU,Patient,p1,10.0.0.1,ws1,success
2026-01-05T11:00:00Z,u1,peek,p1,Ann Lee,nurse,ICU,Patient,p1,10.0.0.1,ws1,success
2026-01-05T11:00:00Z,,read,p1,Ann Lee,nurse,ICU,Patient,p1,10.0.0.1,ws1,success
2026-01-05T11:00:00Z,u1,read,,Ann Lee,nurse,ICU,Patient,p1,10.0.0.1,ws1,success
2026-01-05T11:00:00Z,u1,read,p1
2026-01-05T10:00:00Z,u1,read,p1,Ann Lee,nurse,ICU,Observation,o1,10.0.0.1,ws1,success
2026-01-05T12:00:00Z,u9,login,,Bob Ray,clerk,Admissions,,,10.0.0.9,ws9,FAILURE
2026-01-05T12:30:00Z,u1,read,"p1,Ann Lee,nurse,ICU,Patient,p1,10.0.0.1,ws1,success
`

func TestParseImportCSVReport(t *testing.T) {
	rows, st, err := ParseImport(strings.NewReader(importCSV), FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	wantErrs := []RowError{
		{4, `time "yesterday" is not RFC 3339 (e.g. 2026-01-05T08:30:00Z)`},
		{5, `time "2026-01-05 11:00:00" is not RFC 3339 (e.g. 2026-01-05T08:30:00Z)`},
		{6, `unknown action "peek" (one of read search create update delete print export login login-failed logout break-glass)`},
		{7, "empty user_id"},
		{8, "action read needs a patient_id"},
		{9, "4 fields, the header has 12"},
		{12, `extraneous or missing " in quoted-field`},
	}
	if d := cmp.Diff(wantErrs, st.Errors); d != "" {
		t.Errorf("rejected rows (-want +got):\n%s", d)
	}
	want := ParseStats{Rows: 11, Rejected: 7, Duplicates: 1, OutOfOrder: 1}
	st.Errors = nil
	if d := cmp.Diff(want, st); d != "" {
		t.Errorf("stats (-want +got):\n%s", d)
	}
	var lines []int
	for _, r := range rows {
		lines = append(lines, r.Line)
	}
	if d := cmp.Diff([]int{2, 3, 11}, lines); d != "" {
		t.Errorf("good rows' lines (-want +got):\n%s", d)
	}
	// Times are canonical UTC; outcome lower case.
	if rows[1].Time != "2026-01-05T08:00:00Z" || rows[2].Outcome != "failure" || rows[2].PatientID != "" {
		t.Errorf("canonical rows: %+v", rows)
	}
}

func TestParseImportBadHeader(t *testing.T) {
	if _, _, err := ParseImport(strings.NewReader("time,user,action\n"), FormatCSV); err == nil || !strings.Contains(err.Error(), `"user_id"`) {
		t.Fatalf("err %v, want the missing column named", err)
	}
	if _, _, err := ParseImport(strings.NewReader(""), "xml"); err == nil {
		t.Fatal("unknown format accepted")
	}
}

// auditEventLine renders an access the way phivault's own audit log does.
func auditEventLine(t *testing.T, e *audit.Event) string {
	t.Helper()
	b, err := json.Marshal(e.AuditEvent())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAuditEventNDJSONEqualsCSV(t *testing.T) {
	at := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	ndjson := strings.Join([]string{
		auditEventLine(t, &audit.Event{Time: at, Interaction: "read", Action: "R", Outcome: audit.Success, UserID: "u1", Roles: []string{"nurse"},
			SourceIP: "10.0.0.1", Patients: []string{"p1"}, Entities: []string{"Observation/o1/_history/2"}, Allowed: true}),
		`{"resourceType":"AuditEvent","subtype":[{"code":"search-type"}],"action":"E","recorded":"2026-01-05T11:00:00+01:00","outcome":"0",` +
			`"agent":[{"requestor":false,"who":{"reference":"Device/x"}},{"requestor":true,"who":{"reference":"Practitioner/u2","display":"Bo Day"},` +
			`"role":[{"text":"physician"}],"location":{"display":"Cardiology"},"network":{"address":"10.0.0.2"}}],"source":{"site":"ws2"},` +
			`"entity":[{"what":{"reference":"Patient/p2"}}]}`,
		auditEventLine(t, &audit.Event{Time: at.Add(time.Hour), Interaction: "login", Action: "E", Outcome: audit.MinorFailure, UserID: "u3"}),
		`{"resourceType":"AuditEvent","action":"R","recorded":"2026-01-05T13:00:00Z","outcome":"0","agent":[{"who":{"identifier":{"value":"u1"}},"purposeOfUse":[{"coding":[{"code":"BTG"}]}]}],"entity":[{"what":{"reference":"Patient/p4"}}]}`,
		`{"resourceType":"AuditEvent","recorded":"2026-01-05T13:00:00Z","agent":[{"who":{"identifier":{"value":"u1"}}}]}`,
		`{"resourceType":"Patient"}`,
		`{"resourceType":"AuditEvent",`,
		``,
		`{"resourceType":"AuditEvent","action":"R","recorded":"5 Jan","agent":[{"who":{"identifier":{"value":"u1"}}}],"entity":[{"what":{"reference":"Patient/p1"}}]}`,
		`{"resourceType":"AuditEvent","action":"R","recorded":"2026-01-05T13:00:00Z","outcome":7,"agent":[]}`,
	}, "\n")
	csv := `time,user_id,action,patient_id,user_name,user_role,department,resource_type,resource_id,source_ip,workstation,outcome
2026-01-05T10:00:00Z,u1,read,p1,,nurse,,Observation,o1,10.0.0.1,,success
2026-01-05T10:00:00Z,u2,search,p2,Bo Day,physician,Cardiology,Patient,p2,10.0.0.2,ws2,success
2026-01-05T11:00:00Z,u3,login-failed,,,,,,,,,failure
2026-01-05T13:00:00Z,u1,break-glass,p4,,,,Patient,p4,,,success
`
	fromAE, st, err := ParseImport(strings.NewReader(ndjson), FormatAuditEvent)
	if err != nil {
		t.Fatal(err)
	}
	fromCSV, _, err := ParseImport(strings.NewReader(csv), FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	strip := func(rs []ParsedRow) (out []Row) {
		for _, r := range rs {
			out = append(out, r.Row)
		}
		return out
	}
	if d := cmp.Diff(strip(fromCSV), strip(fromAE)); d != "" {
		t.Errorf("AuditEvent rows differ from CSV rows (-csv +auditevent):\n%s", d)
	}
	wantErrs := []RowError{
		{5, "neither subtype nor action names an action this import knows"},
		{6, `resourceType is "Patient", not AuditEvent`},
		{7, "not JSON (at byte 29)"},
		{9, `time "5 Jan" is not RFC 3339 (e.g. 2026-01-05T08:30:00Z)`},
		{10, "field outcome has the wrong JSON type"},
	}
	if d := cmp.Diff(wantErrs, st.Errors); d != "" {
		t.Errorf("rejected lines (-want +got):\n%s", d)
	}
	if st.Rows != 9 || st.Rejected != 5 {
		t.Errorf("stats %+v", st)
	}
}

// FuzzParseAuditEvent checks that any line either is rejected with a
// message or yields a row the import accepts as it is: canonical time, a
// known action, a user, and a patient for patient actions.
func FuzzParseAuditEvent(f *testing.F) {
	f.Add(`{"resourceType":"AuditEvent","action":"R","recorded":"2026-01-05T13:00:00Z","outcome":"0","agent":[{"who":{"identifier":{"value":"u1"}}}],"entity":[{"what":{"reference":"Patient/p4/_history/1"}}]}`)
	f.Add(`{"resourceType":"AuditEvent","subtype":[{"code":"110122"}],"recorded":"2026-01-05T13:00:00.5+02:00","outcome":"8","agent":[{"requestor":true,"who":{"reference":"x/"}}]}`)
	f.Add(`{"resourceType":"AuditEvent","agent":[{}],"entity":[{"what":{"reference":"/"}}],"extension":[{"url":"urn:phivault:break-glass","valueBoolean":true}]}`)
	f.Add(`[1,2]`)
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseAuditEvent([]byte(line))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		again := r
		if err := again.canonical(r.Time); err != nil {
			t.Fatalf("accepted row is not canonical: %v (%+v)", err, r)
		}
		if again != r {
			t.Fatalf("canonical form is not stable: %+v vs %+v", again, r)
		}
	})
}
