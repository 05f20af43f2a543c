package detect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/simulate"
)

const tinyDir = `{"resourceType":"Location","id":"l1","name":"Cardiology","address":{"line":["1 Hospital Way"],"postalCode":"10001"}}
{"resourceType":"Practitioner","id":"pr1","identifier":[{"system":"urn:phivault:user","value":"u1"}],"name":[{"family":"Stone","given":["Ann"]}],"birthDate":"1980-02-03","address":[{"line":["5 Oak Street"],"postalCode":"10007"}]}
{"resourceType":"PractitionerRole","id":"r1","practitioner":{"reference":"Practitioner/pr1"},"code":[{"text":"nurse"}],"location":[{"reference":"Location/l1"}]}
{"resourceType":"Practitioner","id":"pr2","identifier":[{"system":"urn:phivault:user","value":"u2"}],"name":[{"family":"Vale","given":["Bo"]}],"birthDate":"1975-01-01"}
{"resourceType":"PractitionerRole","id":"r2","active":false,"practitioner":{"reference":"Practitioner/pr2"},"code":[{"text":"physician"}],"specialty":[{"text":"Oncology"}]}
{"resourceType":"Patient","id":"p1","name":[{"family":"Moss","given":["Cy"]}],"birthDate":"1990-01-01","address":[{"line":["9 Elm Road"],"postalCode":"20000"}]}
{"resourceType":"Patient","id":"p2","name":[{"family":"Vale","given":["Bo"]}],"birthDate":"1975-01-01"}
{"resourceType":"Patient","id":"p3","name":[{"family":"Stone","given":["Di"]}],"address":[{"line":["5 Oak Street"],"postalCode":"10007"}],"meta":{"security":[{"code":"V"}]}}
{"resourceType":"Encounter","id":"e1","subject":{"reference":"Patient/p1"},"participant":[{"individual":{"reference":"Practitioner/pr2"}}],"period":{"start":"2026-01-10T08:00:00Z","end":"2026-01-11T08:00:00Z"},"location":[{"location":{"reference":"Location/l1"}}]}
`

func loadTiny(t *testing.T) *Directory {
	t.Helper()
	d, err := LoadDirectory(strings.NewReader(tinyDir))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func unix(s string) int64 { tm, _ := time.Parse(time.RFC3339, s); return tm.Unix() }

func TestDirectoryExplains(t *testing.T) {
	d := loadTiny(t)
	u1, u2 := d.staffIdx["u1"], d.staffIdx["u2"]
	p1, p2 := d.patIdx["p1"], d.patIdx["p2"]
	if d.Staff[u1].Role != "nurse" || d.Depts[d.Staff[u1].Dept] != "Cardiology" || !d.Staff[u2].Disabled {
		t.Fatalf("staff not read: %+v %+v", d.Staff[u1], d.Staff[u2])
	}
	if d.Patients[p2].Employee != u2 {
		t.Errorf("employee not matched by name and birth date")
	}
	cases := []struct {
		name string
		u    int32
		at   string
		want bool
	}{
		{"participant during the stay", u2, "2026-01-10T12:00:00Z", true},
		{"same department as the encounter", u1, "2026-01-10T12:00:00Z", true},
		{"participant a week after discharge", u2, "2026-01-17T12:00:00Z", true},
		{"participant a month later", u2, "2026-02-15T12:00:00Z", false},
		{"before the window", u1, "2026-01-01T12:00:00Z", false},
	}
	for _, c := range cases {
		if got := d.Explain(c.u, p1, unix(c.at), -1, d.Staff[c.u].Dept) != 0; got != c.want {
			t.Errorf("%s: explained = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestImportReportsBadRowsAndSkipsDuplicates(t *testing.T) {
	d := loadTiny(t)
	csv := simulate.Header + "\n" +
		"2026-01-10T09:00:00Z,u1,read,p1,Ann Stone,nurse,Cardiology,Patient,p1,10.0.0.1,ws1,success\n" +
		"10/01/2026 09:00,u1,read,p1,,,,,,,,\n" +
		"2026-01-10T09:01:00Z,u1,peek,p1,,,,,,,,\n" +
		"2026-01-10T09:02:00Z,u1,read,,,,,,,,,\n" +
		"2026-01-10T09:03:00Z,u1,read\n" +
		"2026-01-10T08:00:00Z,u9,read,p404,Eve,clerk,Billing,,,10.0.0.2,ws2,success\n"
	r := NewReader(d)
	var got []Event
	for range 2 { // the same file twice
		if err := r.Read(strings.NewReader(csv), func(e *Event) { got = append(got, *e) }); err != nil {
			t.Fatal(err)
		}
	}
	st := r.Stats
	if len(got) != 2 || st.Accepted != 2 || st.Duplicates != 2 || st.ErrorCount != 8 {
		t.Fatalf("accepted %d, duplicates %d, errors %d: %+v", st.Accepted, st.Duplicates, st.ErrorCount, st.Errors)
	}
	wantLines := []int{3, 4, 5, 6}
	for i, l := range wantLines {
		if st.Errors[i].Line != l {
			t.Errorf("error %d on line %d, want %d: %v", i, st.Errors[i].Line, l, st.Errors[i])
		}
	}
	if st.UnknownUsers != 1 || st.UnknownPatients != 1 || st.OutOfOrder != 1 || got[1].Patient != -2 {
		t.Errorf("unknown users %d, unknown patients %d, out of order %d", st.UnknownUsers, st.UnknownPatients, st.OutOfOrder)
	}
	if err := NewReader(d).Read(strings.NewReader("when,who\n"), func(*Event) {}); err == nil {
		t.Error("a header without the required columns was accepted")
	}
}

// TestFindsInjectedIncidents runs the detector on a small simulated
// hospital; only the test reads the labels.
func TestFindsInjectedIncidents(t *testing.T) {
	dir := t.TempDir()
	if _, err := simulate.Run(simulate.Config{Seed: 11, Users: 150, Patients: 2000, Days: 10, IncidentRate: 1}, dir); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	sum, err := RunFiles(filepath.Join(dir, "directory.ndjson"), []string{filepath.Join(dir, "access.csv")}, out)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(filepath.Join(dir, "labels.csv"))
	labels, err := ReadLabels(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Eval(out, labels)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("events %d, alerts %d, recall %.3f, precision %.3f, AUC %.3f, FP cases/1000 users/day %.2f, explained %.3f",
		sum.Events, rep.Alerts, rep.Recall, rep.Precision, rep.AUC, rep.FPCasesPer1000UDay, rep.ExplainedLegit)
	if rep.Recall < 0.9 || rep.AUC < 0.95 || rep.Precision < 0.6 || rep.ExplainedLegit < 0.95 || rep.FPCasesPer1000UDay > 4 {
		t.Errorf("detector below its floor: %+v", rep)
	}
	alerts, _ := ReadAlerts(filepath.Join(out, "alerts.jsonl"))
	for _, a := range alerts {
		if a.CaseID != "case-"+a.UserID || len(a.Rules) == 0 || len(a.Reasons) == 0 || a.Events == 0 {
			t.Fatalf("alert without case, rules, reasons or events: %+v", a)
		}
	}
}
