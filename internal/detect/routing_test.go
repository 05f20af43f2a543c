package detect

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// flakyChannel records deliveries and fails while down is set.
type flakyChannel struct {
	mu   sync.Mutex
	down bool
	got  []string // message ids, in delivery order
	ch   chan string
}

func (c *flakyChannel) Deliver(_ context.Context, d *Delivery) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return errors.New("connection refused")
	}
	c.got = append(c.got, d.MessageID())
	if c.ch != nil {
		c.ch <- d.MessageID()
	}
	return nil
}

func (c *flakyChannel) set(down bool) { c.mu.Lock(); c.down = down; c.mu.Unlock() }
func (c *flakyChannel) ids() []string { c.mu.Lock(); defer c.mu.Unlock(); return slices.Clone(c.got) }

// TestRouterDeliversAfterOutage: an alert raised while the channel is down
// is delivered once it is back, in order, and a restarted router resends
// nothing it had delivered; each delivery keeps its Message-ID.
func TestRouterDeliversAfterOutage(t *testing.T) {
	f := newLiveFixture(t, testDirectory)
	ctx, cancel := context.WithCancel(context.Background())
	ch := &flakyChannel{down: true, ch: make(chan string, 16)}
	r := NewRouter(RouterConfig{Alerts: f.alerts, Name: "test", Channel: ch, Poll: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	l := f.live(func(*StoredAlert) { r.Wake() })
	time.Sleep(50 * time.Millisecond) // the router has set its cursor at the head (0)
	f.record(t, read("nurse-ann", "pat-vip"))
	f.record(t, read("nurse-ann", "pat-bob"))
	f.step(t, l)
	time.Sleep(200 * time.Millisecond) // several failed attempts
	if got := ch.ids(); len(got) != 0 {
		t.Fatalf("delivered while down: %v", got)
	}
	ch.set(false)
	var first []string
	for len(first) < 2 {
		select {
		case id := <-ch.ch:
			first = append(first, id)
		case <-time.After(10 * time.Second):
			t.Fatalf("not delivered after the outage; got %v", first)
		}
	}
	alerts := f.list(t)
	if len(alerts) != 2 {
		t.Fatalf("alerts: %+v", briefs(alerts))
	}
	for _, id := range first {
		if !slices.ContainsFunc(alerts, func(a *StoredAlert) bool { return a.ID+".0" == id || a.ID+".1" == id }) {
			t.Errorf("delivery %s names no stored alert", id)
		}
	}
	cancel()
	wg.Wait()

	// Restart: nothing is sent again; a new finding is sent once.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	r = NewRouter(RouterConfig{Alerts: f.alerts, Name: "test", Channel: ch, Poll: 20 * time.Millisecond})
	wg.Go(func() { r.Run(ctx) })
	f.record(t, read("nurse-ann", "pat-ann"))
	f.step(t, f.live(nil))
	r.Wake()
	select {
	case id := <-ch.ch:
		if slices.Contains(first, id) {
			t.Errorf("resent %s after a restart", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the new alert was not delivered after the restart")
	}
	time.Sleep(100 * time.Millisecond)
	if got := ch.ids(); len(got) != 3 {
		t.Errorf("deliveries = %v, want 3", got)
	}
	cancel()
	wg.Wait()
	if n, err := r.Cursor(context.Background()); err != nil || n != 3 {
		t.Errorf("cursor = %d %v, want 3", n, err)
	}
}

// TestRouterNewChannelStartsAtHead: a channel configured later is not
// sent the alerts raised before it existed.
func TestRouterNewChannelStartsAtHead(t *testing.T) {
	f := newLiveFixture(t, testDirectory)
	f.record(t, read("nurse-ann", "pat-vip"))
	f.step(t, f.live(nil))
	ch := &flakyChannel{ch: make(chan string, 4)}
	r := NewRouter(RouterConfig{Alerts: f.alerts, Name: "late", Channel: ch})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r.Run(ctx)
	if got := ch.ids(); len(got) != 0 {
		t.Errorf("a new channel got the history: %v", got)
	}
}

// TestCasesGroupAlertsPerUser: one case per user, with all the user's
// alerts, the highest severity and score, and the same id as the batch
// job's cases.
func TestCasesGroupAlertsPerUser(t *testing.T) {
	f := newLiveFixture(t, testDirectory)
	f.record(t, read("nurse-ann", "pat-vip")) // restricted-patient (0.8, medium)
	f.record(t, read("nurse-ann", "pat-ann")) // self-access (0.95, high)
	f.record(t, read("bob", "pat-vip"))
	f.step(t, f.live(nil))
	cases, err := f.alerts.Cases(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]*StoredCase{}
	for _, c := range cases {
		by[c.ID] = c
	}
	ann := by[CaseID("nurse-ann")]
	if len(cases) != 2 || ann == nil || len(ann.Alerts) != 2 || ann.Severity != "high" || ann.Score < 0.95 || ann.Status != StatusNew {
		t.Fatalf("cases: %+v", cases)
	}
	if bob := by["case-bob"]; bob == nil || bob.Severity != "medium" || len(bob.Alerts) != 1 {
		t.Errorf("bob's case: %+v", bob)
	}
	c, alerts, err := f.alerts.Case(context.Background(), "case-nurse-ann")
	if err != nil || c.ID != ann.ID || len(alerts) != 2 {
		t.Fatalf("Case: %+v %v %v", c, alerts, err)
	}
	if _, _, err := f.alerts.Case(context.Background(), "case-nobody"); !errors.Is(err, ErrNoCase) {
		t.Errorf("unknown case: %v", err)
	}
	if _, err := f.alerts.SetCaseStatus(context.Background(), "case-bob", Note{Status: "done"}, nil); !errors.Is(err, ErrBadReview) {
		t.Errorf("bad status: %v", err)
	}
	if CaseID("nurse-ann") != "case-nurse-ann" {
		t.Errorf("CaseID = %q", CaseID("nurse-ann"))
	}
}

// TestCasesAndOutboxSealed: case notes and the outbox reach the store
// only sealed, under names that say nothing.
func TestCasesAndOutboxSealed(t *testing.T) {
	f := newLiveFixture(t, "")
	const user, patient, note = "user-k2x9q", "pat-q7w3z", "asked-the-charge-nurse-k4"
	ch := &flakyChannel{}
	r := NewRouter(RouterConfig{Alerts: f.alerts, Name: "email", Channel: ch})
	if err := r.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.record(t, breakGlass(user, f.now.Add(time.Hour)))
	f.record(t, read(user, patient))
	f.step(t, f.live(nil))
	if _, err := f.alerts.SetCaseStatus(context.Background(), CaseID(user), Note{Time: f.now, By: "po-1", Status: StatusInvestigating, Note: note}, nil); err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, a := range f.list(t) {
		ids = append(ids, a.ID)
	}
	if len(ids) != 2 {
		t.Fatalf("alerts: %v", ids)
	}
	if err := f.alerts.st.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(f.alertDir, "*"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, s := range append(ids, user, patient, note, CaseID(user), StatusInvestigating) {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q in plaintext", filepath.Base(p), s)
			}
		}
	}
}

// TestAlertIDsKeyed: an alert id cannot be recomputed from a guessed user
// and patient (it leaves in emails and webhooks), yet stays stable.
func TestAlertIDsKeyed(t *testing.T) {
	f := newLiveFixture(t, testDirectory)
	f.record(t, read("nurse-ann", "pat-vip"))
	f.step(t, f.live(nil))
	as := f.list(t)
	if len(as) != 1 {
		t.Fatalf("alerts: %v", briefs(as))
	}
	day := as[0].FirstSeen.Format("2006-01-02")
	if plain := alertID("patient", "nurse-ann", "pat-vip", day); as[0].ID == plain || len(as[0].ID) != len(plain) {
		t.Errorf("alert id %s is the unkeyed hash %s (or not its shape)", as[0].ID, plain)
	}
	if got := f.alerts.publicID(alertID("patient", "nurse-ann", "pat-vip", day)); got != as[0].ID {
		t.Errorf("publicID is not stable: %s, stored %s", got, as[0].ID)
	}
}
