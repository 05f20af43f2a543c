package detect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/phivault/phivault/internal/audit"
)

// brief is what a reviewer relies on in an alert.
type brief struct {
	User, Patient string
	Rules         []string
	Severity      string
	Events        int
	Status        string
}

func briefs(as []*StoredAlert) []brief {
	var out []brief
	for _, a := range as {
		out = append(out, brief{a.UserID, a.PatientID, a.Rules, a.Severity, a.Events, a.Status})
	}
	return out
}

var sortBriefs = cmpopts.SortSlices(func(a, b brief) bool { return fmt.Sprint(a) < fmt.Sprint(b) })

func TestLiveBreakGlassRaisesAlertAtOnce(t *testing.T) {
	f := newLiveFixture(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	routed := make(chan *StoredAlert, 10)
	l := f.live(func(a *StoredAlert) { routed <- a })
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	f.record(t, read("dr-eve", "p-1")) // an ordinary read: no alert
	f.record(t, breakGlass("dr-eve", f.now.Add(time.Hour)))
	f.record(t, read("dr-eve", "p-2")) // inside the window
	var got []*StoredAlert
	for range 2 {
		select {
		case a := <-routed:
			got = append(got, a)
		case <-time.After(10 * time.Second): // a failure bound; the poll is 10 ms
			t.Fatalf("only %d alerts routed", len(got))
		}
	}
	want := []brief{
		{User: "dr-eve", Rules: []string{"break-glass"}, Severity: "low", Events: 1, Status: StatusNew},
		{User: "dr-eve", Patient: "p-2", Rules: []string{"break-glass-access"}, Severity: "low", Events: 1, Status: StatusNew},
	}
	if d := cmp.Diff(want, briefs(got), sortBriefs); d != "" {
		t.Errorf("routed alerts (-want +got):\n%s", d)
	}
	if d := cmp.Diff(want, briefs(f.list(t)), sortBriefs); d != "" {
		t.Errorf("stored alerts (-want +got):\n%s", d)
	}
}

func TestLiveAccessFlaggedBreakGlass(t *testing.T) {
	// An access the policy allowed through the break-the-glass policy is
	// flagged even when the window's opening is not in the log (another node).
	f := newLiveFixture(t, "")
	ev := read("dr-eve", "p-9")
	ev.Policies = []string{"break-the-glass"}
	f.record(t, ev)
	f.record(t, read("dr-eve", "p-8")) // no window known, no flag: nothing
	f.step(t, f.live(nil))
	want := []brief{{User: "dr-eve", Patient: "p-9", Rules: []string{"break-glass-access"}, Severity: "low", Events: 1, Status: StatusNew}}
	if d := cmp.Diff(want, briefs(f.list(t))); d != "" {
		t.Errorf("alerts (-want +got):\n%s", d)
	}
}

func TestLiveUsesBatchRules(t *testing.T) {
	many := make([]string, 25)
	for i := range many {
		many[i] = fmt.Sprintf("p-%02d", i)
	}
	tests := []struct {
		name   string
		events []audit.Event
		want   []brief
	}{
		{"self-access", []audit.Event{read("nurse-ann", "pat-ann")},
			[]brief{{"nurse-ann", "pat-ann", []string{"self-access", "no-relationship"}, "high", 1, StatusNew}}},
		{"co-worker", []audit.Event{read("nurse-ann", "pat-bob")},
			[]brief{{"nurse-ann", "pat-bob", []string{"no-relationship", "co-worker"}, "medium", 1, StatusNew}}},
		{"vip", []audit.Event{read("nurse-ann", "pat-vip"), read("nurse-ann", "pat-vip")},
			[]brief{{"nurse-ann", "pat-vip", []string{"no-relationship", "restricted-patient"}, "medium", 2, StatusNew}}},
		{"in care: explained", []audit.Event{read("nurse-ann", "pat-care")}, nil},
		{"bulk search", []audit.Event{{Interaction: "search-type", UserID: "nurse-ann", Patients: many}},
			[]brief{{"nurse-ann", "", []string{"bulk-access"}, "high", 1, StatusNew}}},
		{"probing", slices.Repeat([]audit.Event{{Interaction: "read", UserID: "x", Outcome: audit.MinorFailure, Patients: []string{"p"}}}, 10),
			[]brief{{"x", "", []string{"probing"}, "low", 1, StatusNew}}},
		{"brute force", slices.Repeat([]audit.Event{{Interaction: "login-failed", UserID: "x", Outcome: audit.MinorFailure}}, 9),
			[]brief{{"x", "", []string{"brute-force"}, "medium", 2, StatusNew}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newLiveFixture(t, testDirectory)
			for _, ev := range tc.events {
				f.record(t, ev)
			}
			f.step(t, f.live(nil))
			if d := cmp.Diff(tc.want, briefs(f.list(t)), sortBriefs); d != "" {
				t.Errorf("alerts (-want +got):\n%s", d)
			}
		})
	}
}

func TestLiveRestartResumesWithoutDuplicates(t *testing.T) {
	f := newLiveFixture(t, testDirectory)
	f.record(t, breakGlass("nurse-ann", f.now.Add(time.Hour)))
	f.record(t, read("nurse-ann", "pat-vip"))
	if n := f.step(t, f.live(nil)); n != 2 {
		t.Fatalf("processed %d leaves, want 2", n)
	}
	before := f.list(t)

	// A restart processes nothing again.
	if n := f.step(t, f.live(nil)); n != 0 {
		t.Errorf("after a restart processed %d leaves, want 0", n)
	}
	// A crash between storing alerts and moving the cursor (at-least-once):
	// the replay finds every event already merged.
	if err := f.alerts.st.Update(context.Background(), func(w storeWriter) error { return w.SetMeta(cursorKey, []byte("0")) }); err != nil {
		t.Fatal(err)
	}
	if n := f.step(t, f.live(nil)); n != 2 {
		t.Errorf("replay processed %d leaves, want 2", n)
	}
	if d := cmp.Diff(before, f.list(t)); d != "" {
		t.Errorf("a replay changed the alerts (-before +after):\n%s", d)
	}
	// The window opened before the restart still flags new accesses.
	f.record(t, read("nurse-ann", "pat-care"))
	f.step(t, f.live(nil))
	var flagged bool
	for _, a := range f.list(t) {
		flagged = flagged || (a.PatientID == "pat-care" && slices.Contains(a.Rules, "break-glass-access"))
	}
	if !flagged {
		t.Errorf("an access in a window opened before the restart was not flagged: %v", briefs(f.list(t)))
	}
}

func TestAlertsSealed(t *testing.T) {
	f := newLiveFixture(t, "")
	const user, patient, note = "user-zq81x", "pat-vip-77k", "called-the-ward-sister"
	f.record(t, breakGlass(user, f.now.Add(time.Hour)))
	f.record(t, read(user, patient))
	f.step(t, f.live(nil))
	as := f.list(t)
	if len(as) != 2 {
		t.Fatalf("%d alerts, want 2", len(as))
	}
	if _, err := f.alerts.Review(context.Background(), as[0].ID, Note{Time: f.now, By: "po-1", Status: StatusInvestigating, Note: note}, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.alerts.st.Close(); err != nil { // flush the WAL into the file
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(f.alertDir, "*"))
	if len(files) == 0 {
		t.Fatal("no store files")
	}
	secrets := []string{user, patient, note, LiveRules[0].Explain, as[0].ID, "break-glass-access"}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // a directory
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q in plaintext", filepath.Base(p), s)
			}
		}
	}
}

func TestReview(t *testing.T) {
	f := newLiveFixture(t, "")
	f.record(t, breakGlass("dr-eve", f.now.Add(time.Hour)))
	f.step(t, f.live(nil))
	id := f.list(t)[0].ID
	ctx := context.Background()
	// The review's audit leaf goes to the alert store's log, in the
	// review's transaction (one store in serve).
	auditSize := func() int64 {
		var n int64
		f.alerts.st.View(ctx, func(r storeReader) (err error) { n, err = r.AuditSize(); return err })
		return n
	}
	size := auditSize()
	if _, err := f.alerts.Review(ctx, id, Note{Status: "done"}, []byte("x")); !errors.Is(err, ErrBadReview) {
		t.Errorf("unknown status: %v, want ErrBadReview", err)
	}
	if _, err := f.alerts.Review(ctx, "al-nope", Note{Status: StatusBreach}, []byte("x")); !errors.Is(err, ErrNoAlert) {
		t.Errorf("unknown alert: %v, want ErrNoAlert", err)
	}
	if s := auditSize(); s != size {
		t.Fatalf("failed reviews appended %d leaves", s-size)
	}
	n := Note{Time: f.now.UTC(), By: "po-1", Status: StatusFalsePositive, Note: "cardiac arrest, ward 3"}
	got, err := f.alerts.Review(ctx, id, n, []byte(`{"resourceType":"AuditEvent"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusFalsePositive || len(got.Notes) != 1 {
		t.Errorf("review = %+v", got)
	}
	stored, _ := f.alerts.Get(ctx, id)
	if d := cmp.Diff([]Note{n}, stored.Notes); d != "" || stored.Status != StatusFalsePositive {
		t.Errorf("stored review (-want +got):\n%s status %s", d, stored.Status)
	}
	if s := auditSize(); s != size+1 {
		t.Errorf("the review appended %d audit leaves, want 1", s-size)
	}
}
