package detect

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// liveFixture is an audit log and an alert store, each over its own real
// SQLite store (so that a scan of the alerts' files sees only what the
// alert store wrote), and a clock the test moves.
type liveFixture struct {
	log      *audit.Log
	logStore store.Backend
	prover   *audit.Prover
	alerts   *AlertStore
	alertDir string
	now      time.Time // the test goroutine's clock
	dir      *Directory
	// seen is now as the detector's goroutine reads it (set by record).
	seen atomic.Int64
}

func newLiveFixture(t testing.TB, directory string) *liveFixture {
	t.Helper()
	ctx := context.Background()
	tmp := t.TempDir()
	kp := filepath.Join(tmp, "kek.json")
	if err := keys.CreateFile(kp, nil); err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenFile(kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	logSt, err := sqlite.Open(filepath.Join(tmp, "audit"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logSt.Close() })
	f := &liveFixture{alertDir: filepath.Join(tmp, "alerts"), now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	f.seen.Store(f.now.UnixNano())
	alertSt, err := sqlite.Open(f.alertDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alertSt.Close() })
	b, err := barrier.Open(ctx, kek, alertSt, 100)
	if err != nil {
		t.Fatal(err)
	}
	if f.alerts, err = NewAlertStore(ctx, alertSt, b); err != nil {
		t.Fatal(err)
	}
	f.log, f.logStore = audit.NewLog(logSt, 5*time.Second), logSt
	f.prover = f.log.Prover()
	if directory != "" {
		if f.dir, err = LoadDirectory(strings.NewReader(directory)); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// live returns a detector over the fixture (a fresh one is a restart).
func (f *liveFixture) live(route func(*StoredAlert)) *Live {
	c := LiveConfig{Log: f.prover, Alerts: f.alerts, Poll: 10 * time.Millisecond, Route: route,
		Now: func() time.Time { return time.Unix(0, f.seen.Load()).UTC() }}
	if f.dir != nil {
		c.Directory = func(context.Context) (*Directory, error) { return f.dir, nil }
	}
	return NewLive(c)
}

// record appends an event at the fixture's clock, which then moves on a
// second.
func (f *liveFixture) record(t testing.TB, ev audit.Event) {
	t.Helper()
	if ev.Time.IsZero() {
		ev.Time = f.now
	}
	if ev.Outcome == "" {
		ev.Outcome, ev.Allowed = audit.Success, true
	}
	if ev.Action == "" {
		ev.Action = "R"
	}
	if err := f.log.Record(context.Background(), &ev); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(time.Second)
	f.seen.Store(f.now.UnixNano())
}

func (f *liveFixture) step(t *testing.T, l *Live) int {
	t.Helper()
	n, err := l.Step(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *liveFixture) list(t *testing.T) []*StoredAlert {
	t.Helper()
	as, err := f.alerts.List(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// breakGlass is the event the session manager records when a window opens.
func breakGlass(user string, until time.Time) audit.Event {
	return audit.Event{Interaction: "break-glass", Action: "E", UserID: user, Roles: []string{"physician"},
		OutcomeDesc: "break-the-glass opened: emergency-treatment until " + until.UTC().Format(time.RFC3339),
		BreakGlass:  true, Policies: []string{"session"}}
}

func read(user, patient string) audit.Event {
	return audit.Event{Interaction: "read", UserID: user, Roles: []string{"nurse"}, SourceIP: "10.1.2.3",
		Patients: []string{patient}, Entities: []string{"Patient/" + patient}, Policies: []string{"clinical-care"}}
}

// testDirectory: nurse-ann works in Cardiology and is herself patient
// pat-ann; pat-bob is a co-worker (bob); pat-vip is very restricted;
// pat-care has an open encounter with nurse-ann.
const testDirectory = `{"resourceType":"Practitioner","id":"pr-ann","identifier":[{"system":"urn:phivault:user","value":"nurse-ann"}],"name":[{"family":"Quist","given":["Ann"]}],"address":[{"line":["1 Elm Road"],"postalCode":"AB1 2CD"}]}
{"resourceType":"PractitionerRole","id":"rl-ann","practitioner":{"reference":"Practitioner/pr-ann"},"code":[{"text":"nurse"}],"specialty":[{"text":"Cardiology"}]}
{"resourceType":"Practitioner","id":"pr-bob","identifier":[{"system":"urn:phivault:user","value":"bob"}],"name":[{"family":"Marr","given":["Bob"]}]}
{"resourceType":"Patient","id":"pat-ann","identifier":[{"system":"urn:phivault:user","value":"nurse-ann"}],"name":[{"family":"Quist","given":["Ann"]}]}
{"resourceType":"Patient","id":"pat-bob","identifier":[{"system":"urn:phivault:user","value":"bob"}],"name":[{"family":"Marr","given":["Bob"]}]}
{"resourceType":"Patient","id":"pat-vip","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"}]},"name":[{"family":"Star","given":["Vera"]}]}
{"resourceType":"Patient","id":"pat-care","name":[{"family":"Well","given":["Carl"]}]}
{"resourceType":"Encounter","id":"enc-1","subject":{"reference":"Patient/pat-care"},"participant":[{"individual":{"reference":"Practitioner/pr-ann"}}],"period":{"start":"2026-03-01T08:00:00Z"}}
`

type storeWriter = store.Writer
type storeReader = store.Reader
