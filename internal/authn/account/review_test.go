package account

import (
	"bytes"
	"encoding/csv"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/audit"
)

func TestReview(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	mustCreate(t, d, "old.never", "billing") // created, never logs in
	e.clk.Add(10 * 24 * time.Hour)
	mustCreate(t, d, "active", "physician")
	mustCreate(t, d, "officer", "privacy-officer")
	mustCreate(t, d, "stale", "nurse")
	if _, err := d.Login(ctx, "stale", goodPW, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	now := e.clk.Now()
	d.RecordTraining(ctx, "active", Training{Course: "hipaa", Completed: now, Expires: now.AddDate(1, 0, 0)}, "officer")
	d.RecordTraining(ctx, "stale", Training{Course: "hipaa", Completed: now.AddDate(-1, 0, 0), Expires: now.AddDate(0, 0, 5)}, "officer")
	d.UpdateMFA(ctx, "active", func(m *MFA) error { m.TOTPSecret = Secret("k"); return nil })
	// Break-the-glass: two flagged accesses by active, one unflagged, one
	// flagged by someone else.
	for _, ev := range []audit.Event{
		{Interaction: "read", Action: "R", UserID: "active", BreakGlass: true},
		{Interaction: "read", Action: "R", UserID: "active", BreakGlass: true},
		{Interaction: "read", Action: "R", UserID: "active"},
		{Interaction: "read", Action: "R", UserID: "officer-x", BreakGlass: true},
	} {
		if err := e.log.Record(ctx, &ev); err != nil {
			t.Fatal(err)
		}
	}
	e.clk.Add(85 * 24 * time.Hour) // old.never: 95 days old; stale: last login 85 days ago
	if _, err := d.Login(ctx, "active", goodPW, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(6 * 24 * time.Hour) // stale: 91 days; training expired
	if err := d.Disable(ctx, "officer", "admin1", "left"); err != nil {
		t.Fatal(err)
	}
	rows, err := d.Review(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		ID                  string
		Dormant, Privileged bool
		BTG                 int
		Training            string
		MFA                 []string
		Disabled            bool
		NeverLoggedIn       bool
	}
	var got []row
	for _, r := range rows {
		got = append(got, row{r.ID, r.Dormant, r.Privileged, r.BreakGlassUses, r.Training, r.MFA, r.Disabled, r.LastLogin.IsZero()})
	}
	want := []row{
		{"active", false, false, 2, TrainingCurrent, []string{"totp"}, false, false},
		{"officer", true, true, 0, TrainingMissing, nil, true, true},
		{"old.never", true, false, 0, TrainingMissing, nil, false, true},
		{"stale", true, false, 0, TrainingExpired, nil, false, false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("review (-want +got):\n%s", diff)
	}

	var buf bytes.Buffer
	if err := ReviewCSV(&buf, rows); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 || recs[0][0] != "id" || recs[1][0] != "active" {
		t.Fatalf("CSV %q", recs)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	if r := recs[1]; r[col["break_glass_uses"]] != "2" || r[col["training"]] != "current" || r[col["mfa"]] != "totp" ||
		r[col["training_expires"]] != now.AddDate(1, 0, 0).Format(time.RFC3339) {
		t.Errorf("CSV row for active: %q", r)
	}
	if r := recs[3]; r[col["last_login"]] != "" || r[col["dormant"]] != "true" {
		t.Errorf("CSV row for old.never: %q", r)
	}
}

// A name that a spreadsheet would run as a formula is defused.
func TestReviewCSVFormula(t *testing.T) {
	var buf bytes.Buffer
	ReviewCSV(&buf, []ReviewRow{{ID: "x", Name: "=HYPERLINK(\"http://evil\")"}})
	if strings.Contains(buf.String(), ",=HYPERLINK") || !strings.Contains(buf.String(), "'=HYPERLINK") {
		t.Fatalf("CSV %q", buf.String())
	}
}

// Valid on a cached account: what every request pays.
func BenchmarkValid(b *testing.B) {
	e := newEnv(b)
	d := e.open(b)
	d.now = time.Now
	for i := range 1000 {
		mustCreate(b, d, "user"+strconv.Itoa(i), "nurse")
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := d.Valid(ctx, "user"+strconv.Itoa(i%1000), 1); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// Valid reading the store every time (the cost a cache miss adds).
func BenchmarkValidUncached(b *testing.B) {
	e := newEnv(b)
	d := e.open(b)
	mustCreate(b, d, "alice", "nurse")
	b.ReportAllocs()
	for b.Loop() {
		d.invalidate("alice")
		if _, err := d.Valid(ctx, "alice", 1); err != nil {
			b.Fatal(err)
		}
	}
}

// Login with the production Argon2id parameters.
func BenchmarkLogin(b *testing.B) {
	e := newEnv(b)
	d := e.open(b, func(o *Options) { o.argon = defaultArgon })
	mustCreate(b, d, "alice", "nurse")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Login(ctx, "alice", goodPW, "10.0.0.1"); err != nil {
			b.Fatal(err)
		}
	}
}

// Login of an unknown user: compare with BenchmarkLogin (same hash cost).
func BenchmarkLoginUnknown(b *testing.B) {
	e := newEnv(b)
	d := e.open(b, func(o *Options) {
		o.argon = defaultArgon
		o.DelayAfter = 1 << 30
		o.LockAfter = 1 << 30
		o.SourceLimit = 1 << 30
	})
	b.ReportAllocs()
	for b.Loop() {
		d.Login(ctx, "mallory", goodPW, "10.0.0.1")
	}
}

// A wrong password for a known user: compare with BenchmarkLoginUnknown.
func BenchmarkLoginWrong(b *testing.B) {
	e := newEnv(b)
	d := e.open(b, func(o *Options) {
		o.argon = defaultArgon
		o.DelayAfter = 1 << 30
		o.LockAfter = 1 << 30
		o.SourceLimit = 1 << 30
	})
	mustCreate(b, d, "alice", "nurse")
	b.ReportAllocs()
	for b.Loop() {
		d.Login(ctx, "alice", goodPW+"x", "10.0.0.1")
	}
}
