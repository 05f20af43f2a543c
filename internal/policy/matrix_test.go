package policy

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// matrixRow is one cell of testdata/matrix.csv (written by matrix_gen.go,
// whose doc comment states the fixed assumptions of every cell).
type matrixRow struct {
	line                                                 int
	role, action, kind, rel, consent, bg, purpose, allow string
}

func readMatrix(t *testing.T) []matrixRow {
	t.Helper()
	f, err := os.Open("testdata/matrix.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := "role,action,kind,relationship,consent,break_glass,purpose,expected"
	if len(recs) < 2 || strings.Join(recs[0], ",") != want {
		t.Fatalf("matrix.csv header %v; want %s", recs[0], want)
	}
	var rows []matrixRow
	for i, r := range recs[1:] {
		rows = append(rows, matrixRow{i + 2, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]})
	}
	return rows
}

// request turns a cell into the Request and Facts it stands for.
func (m matrixRow) request(t *testing.T, now time.Time) (Request, *memFacts) {
	t.Helper()
	const target = "p1"
	p := Principal{UserID: "u-" + m.role, Roles: []string{m.role}, Practitioner: "pr1",
		Method: "password+totp", MFA: true, Trained: true}
	switch m.role {
	case "patient":
		p = Principal{UserID: "pat", Roles: []string{"patient"}, Method: "password", Patient: "p9"}
		if m.rel == "self" {
			p.Patient = target
		}
	case "device":
		p = Principal{UserID: "dev", Roles: []string{"device"}, Method: "mtls"}
	case "vendor":
		p = Principal{UserID: "ven", Roles: []string{"vendor"}, Method: "smart", ClientID: "ven"}
	case "operator":
		p = Principal{UserID: "cli", Roles: []string{"operator"}, Method: "local-cli"}
	}
	switch m.bg {
	case "active":
		p.BreakGlass = &BreakGlass{Reason: "matrix", Until: now.Add(time.Hour)}
	case "expired":
		p.BreakGlass = &BreakGlass{Reason: "matrix", Until: now.Add(-time.Minute)}
	case "no":
	default:
		t.Fatalf("line %d: break_glass %q", m.line, m.bg)
	}
	f := &memFacts{rels: map[[2]string][]string{}, consents: map[string][]Consent{}}
	switch m.rel {
	case "careteam":
		f.rels[[2]string{"pr1", target}] = []string{"careteam"}
	case "none", "self":
	default:
		t.Fatalf("line %d: relationship %q", m.line, m.rel)
	}
	switch m.consent {
	case "deny":
		f.consents[target] = []Consent{{ID: "c-deny", Permit: false}}
	case "permit-research":
		f.consents[target] = []Consent{{ID: "c-research", Permit: true, Purpose: []string{"HRESCH"}}}
	case "none":
	default:
		t.Fatalf("line %d: consent %q", m.line, m.consent)
	}
	r := Request{Principal: p, Action: Action(m.action), Purpose: m.purpose}
	switch m.kind {
	case "patient-clinical":
		r.Type, r.ID, r.Patient = "Observation", "o1", target
	case "patient-demographics":
		r.Type, r.ID = "Patient", target
	case "financial":
		r.Type, r.ID, r.Patient = "Claim", "c1", target
	case "reference":
		r.Type, r.ID = "Practitioner", "pr1"
	case "audit-log", "monitoring-case", "audit-search", "disclosures": // cases are decided as the audit log
		r.Type = "AuditEvent"
		if m.rel == "self" {
			r.Patient = target
		}
	case "configuration":
	default:
		t.Fatalf("line %d: kind %q", m.line, m.kind)
	}
	return r, f
}

// TestMatrix runs every cell of the authorization matrix through the
// engine with the default policies: zero unexpected allows, zero
// unexpected denies. It also checks that the matrix covers every role and
// every default policy that its columns can reach.
func TestMatrix(t *testing.T) {
	rows := readMatrix(t)
	now := t0
	var unexpectedAllow, unexpectedDeny int
	decidedBy := map[string]bool{}
	rolesSeen := map[string]bool{}
	facts := &memFacts{}
	e := newTestEngine(t, facts)
	for _, m := range rows {
		r, f := m.request(t, now)
		*facts = *f
		d := e.Decide(context.Background(), r)
		rolesSeen[m.role] = true
		for _, id := range d.Policies {
			decidedBy[id] = true
		}
		switch {
		case m.allow == "allow" && !d.Allow:
			unexpectedDeny++
			t.Errorf("line %d %v: denied by %v (%s); want allow", m.line, m, d.Policies, d.Reason)
		case m.allow == "deny" && d.Allow:
			unexpectedAllow++
			t.Errorf("line %d %v: allowed by %v; want deny", m.line, m, d.Policies)
		case m.allow != "allow" && m.allow != "deny":
			t.Fatalf("line %d: expected %q", m.line, m.allow)
		}
	}
	t.Logf("%d cells: %d unexpected allows, %d unexpected denies", len(rows), unexpectedAllow, unexpectedDeny)
	for _, role := range []string{"physician", "nurse", "front-desk", "billing", "researcher", "privacy-officer",
		"security-officer", "administrator", "auditor", "patient", "device", "vendor", "operator"} {
		if !rolesSeen[role] {
			t.Errorf("the matrix has no row for role %s", role)
		}
	}
	// Policies the matrix columns cannot reach are covered by TestRules and
	// TestScopesNarrowOnly (scopes, training, MFA, labels, type-level gates).
	elsewhere := []string{"smart-scope", "training-required", "mfa-required", "restricted-record", "clinical-search"}
	for _, id := range policyIDs(t) {
		if !decidedBy[id] && !slices.Contains(elsewhere, id) {
			t.Errorf("no matrix cell is decided by policy %q", id)
		}
	}
}

func policyIDs(t *testing.T) []string {
	ps, err := compile(DefaultPolicies())
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(ps.ids))
	for i, id := range ps.ids {
		ids[i] = string(id)
	}
	return ids
}

// TestMatrixIsGenerated: testdata/matrix.csv is exactly what matrix_gen.go
// writes, so the expected column always comes from its stated rules (edit
// the rules and run go generate, never the file).
func TestMatrixIsGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the generator with the go command")
	}
	out := filepath.Join(t.TempDir(), "matrix.csv")
	cmd := exec.Command("go", "run", "matrix_gen.go", "-o", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run matrix_gen.go: %v\n%s", err, msg)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("testdata/matrix.csv")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("testdata/matrix.csv differs from what matrix_gen.go writes; run go generate ./internal/policy")
	}
}
