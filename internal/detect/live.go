package detect

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// LeafSource is the audit log as the live detector follows it
// (*audit.Prover). Leaves are dense and append-only.
type LeafSource interface {
	// Size returns the number of leaves appended so far.
	Size(ctx context.Context) (uint64, error)
	// ScanLeaves calls fn for each leaf in [from, to), in order.
	ScanLeaves(ctx context.Context, from, to uint64, batch int, fn func(index uint64, leaf []byte) error) error
}

// defaultPoll is how often Run looks for new leaves: an alert reaches its
// channels about a tenth of a second after its event (about a second with
// the 1 s poll before it), and each step parses a tenth of a second of
// leaves rather than a second's in one go. An idle step is one read of
// the log's size (docs/benchmarks.md, "Leaner leaf parsing and the live
// detector every 100 ms").
const defaultPoll = 100 * time.Millisecond

// LiveConfig configures a Live detector.
type LiveConfig struct {
	Log    LeafSource
	Alerts *AlertStore
	// Directory loads the directory facts (staff, patients, care
	// relationships); nil runs the rules that need none. It is called at
	// start, every DirectoryEvery, and when an event names a patient the
	// directory does not know yet (at most once per step, and so that
	// loading takes at most a tenth of the time).
	Directory      func(ctx context.Context) (*Directory, error)
	DirectoryEvery time.Duration // default 5 minutes
	Poll           time.Duration // default 100 ms
	Batch          int           // leaves per transaction, default 4096
	// Route, when set, is called with every alert that is new or gained a
	// rule, after it is durably stored (e.g. Webhook.Send). It must not block.
	Route  func(*StoredAlert)
	Logger *slog.Logger
	Now    func() time.Time
}

// Live runs the detector on the audit log as it grows: it reads every
// leaf after the last one processed, applies the rules in log order and
// stores the alerts, sealed, together with the new position, in one
// transaction. A restart resumes from the stored position; alerts have
// stable ids and remember the last leaf merged, so a replay adds nothing
// twice. Counters behind the burst rules are rebuilt from the hour of log
// before the position.
type Live struct {
	c       LiveConfig
	state   *liveState
	cursor  uint64
	started bool
	dirAt   time.Time     // last directory load (by Now)
	dirCost time.Duration // how long it took (wall clock)
	dirStep bool          // loaded during this Step
	mu      sync.Mutex    // serialises Step
}

// NewLive returns a Live detector; call Run (or Step).
func NewLive(c LiveConfig) *Live {
	if c.Poll <= 0 {
		c.Poll = defaultPoll
	}
	if c.Batch <= 0 {
		c.Batch = 4096
	}
	if c.DirectoryEvery <= 0 {
		c.DirectoryEvery = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Live{c: c}
}

// Run processes new leaves every Poll until ctx ends. Errors are logged
// (once until the next success) and retried at the next poll; nothing is
// skipped.
func (l *Live) Run(ctx context.Context) {
	t := time.NewTicker(l.c.Poll)
	defer t.Stop()
	last := ""
	for {
		_, err := l.Step(ctx)
		switch {
		case err == nil:
			last = ""
		case ctx.Err() == nil && err.Error() != last:
			// Once per distinct failure (a sealed barrier fails every poll).
			last = err.Error()
			l.c.Logger.Error("detect: live detector step failed; retrying", "err", last)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Step processes every leaf appended so far and returns how many it
// processed.
func (l *Live) Step(ctx context.Context) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started {
		if err := l.start(ctx); err != nil {
			return 0, err
		}
	}
	l.dirStep = false
	if l.c.Directory != nil && l.c.Now().Sub(l.dirAt) >= l.c.DirectoryEvery {
		l.reloadDirectory(ctx)
	}
	size, err := l.c.Log.Size(ctx)
	if err != nil {
		return 0, err
	}
	done := 0
	for l.cursor < size {
		end := min(size, l.cursor+uint64(l.c.Batch))
		var fs []finding
		err := l.c.Log.ScanLeaves(ctx, l.cursor, end, l.c.Batch, func(i uint64, leaf []byte) error {
			ev, err := parseLeaf(i, leaf)
			if err != nil {
				// Not an event the rules can read (another writer's leaf
				// format); the verifier checks leaves, not the detector.
				return nil
			}
			l.maybeReload(ctx, &ev)
			fs = append(fs, l.state.apply(&ev)...)
			return nil
		})
		if err != nil {
			return done, err
		}
		changed, err := l.c.Alerts.commit(ctx, fs, end, l.c.Now().UTC())
		if err != nil {
			// The counters saw events whose alerts were not stored: start
			// over from the stored position.
			l.started = false
			return done, err
		}
		done += int(end - l.cursor)
		l.cursor = end
		if l.c.Route != nil {
			for _, a := range changed {
				l.c.Route(a)
			}
		}
	}
	return done, nil
}

// start reads the stored position and rebuilds the burst counters from up
// to an hour (at most 20,000 leaves) of log before it, without raising
// alerts.
func (l *Live) start(ctx context.Context) error {
	cur, err := l.c.Alerts.Cursor(ctx)
	if err != nil {
		return err
	}
	l.state = newLiveState(nil)
	if l.c.Directory != nil {
		l.reloadDirectory(ctx)
	}
	from := uint64(0)
	if cur > 20_000 {
		from = cur - 20_000
	}
	var last time.Time
	var evs []liveEvent
	if err := l.c.Log.ScanLeaves(ctx, from, cur, l.c.Batch, func(i uint64, leaf []byte) error {
		if ev, err := parseLeaf(i, leaf); err == nil {
			evs = append(evs, ev)
			last = ev.T
		}
		return nil
	}); err != nil {
		return err
	}
	for i := range evs {
		if last.Sub(evs[i].T) <= time.Hour {
			l.state.apply(&evs[i])
		}
	}
	l.cursor, l.started = cur, true
	return nil
}

var errNoDirectory = errors.New("detect: directory unavailable")

func (l *Live) reloadDirectory(ctx context.Context) {
	l.dirAt, l.dirStep = l.c.Now(), true
	start := time.Now()
	d, err := l.c.Directory(ctx)
	l.dirCost = time.Since(start)
	if err == nil && d == nil {
		err = errNoDirectory
	}
	if err != nil {
		l.c.Logger.Warn("detect: loading the directory failed; keeping the previous one", "err", err.Error())
		return
	}
	if d.Skipped > 0 {
		l.c.Logger.Warn("detect: the directory left out resources it could not read", "resources", d.Skipped)
	}
	l.state.dir = d
}

// maybeReload reloads the directory when an event names a patient it
// does not know (a patient created since the last load).
func (l *Live) maybeReload(ctx context.Context, ev *liveEvent) {
	if l.c.Directory == nil || l.dirStep || l.c.Now().Sub(l.dirAt) < 10*l.dirCost {
		return
	}
	for _, p := range ev.Patients {
		if _, ok := l.state.dir.patIdx[p]; !ok {
			l.reloadDirectory(ctx)
			return
		}
	}
}
