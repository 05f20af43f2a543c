package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// leaderProbe is a cluster job that records which node runs it and
// whether two ever run at once, and writes through the term's store.
type leaderProbe struct {
	mu      sync.Mutex
	running map[int]bool
	starts  []int
	overlap atomic.Int32
}

func (p *leaderProbe) job(node int) leaderJob {
	return leaderJob{name: "probe", run: func(ctx context.Context, st store.Backend) {
		p.mu.Lock()
		if len(p.running) > 0 {
			p.overlap.Add(1)
		}
		p.running[node] = true
		p.starts = append(p.starts, node)
		p.mu.Unlock()
		<-ctx.Done()
		p.mu.Lock()
		delete(p.running, node)
		p.mu.Unlock()
	}}
}

// current returns the node running the job once exactly one does, after
// the start count reached n, within 10 s.
func (p *leaderProbe) current(t *testing.T, n int) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		p.mu.Lock()
		starts, running := len(p.starts), len(p.running)
		var who int
		for k := range p.running {
			who = k
		}
		p.mu.Unlock()
		if starts >= n && running == 1 {
			return who
		}
	}
	t.Fatalf("the job did not run on exactly one node within 10s (starts so far %v)", p.starts)
	return -1
}

// TestLeadJobs runs serve's leader loop on two nodes of one PostgreSQL
// database: the jobs run on exactly one; when its leadership connection
// is cut they stop there and start on the other, and the first campaigns
// again; a clean stop of the leader hands the jobs over at once. On the
// embedded store the one node runs them.
func TestLeadJobs(t *testing.T) {
	dsn := pgtest.DSN(t)
	pgStop.Do(func() { atExit(pgtest.Stop) })
	log := slog.New(slog.DiscardHandler)
	p := &leaderProbe{running: map[int]bool{}}
	var stops []func()
	for i := range 2 {
		db, err := postgres.Open(context.Background(), dsn, postgres.WithReaders(2))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		stops = append(stops, leadJobs(context.Background(), electorFor(db, 100*time.Millisecond, log), log, p.job(i), leaderJob{name: "skipped"}))
	}
	stopped := make([]bool, 2)
	defer func() {
		for i, s := range stops {
			if !stopped[i] {
				s()
			}
		}
	}()
	first := p.current(t, 1)
	// Cut the leader's lock session only: the other node's campaign goes on.
	pgtest.Exec(t, pgtest.AdminDSN(t), `SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a
		JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory' AND l.granted
		WHERE a.application_name = 'phivault leader jobs' AND a.datname = current_database()`)
	second := p.current(t, 2)
	if second == first {
		t.Fatalf("node %d led again after its connection was cut, before the other node", first)
	}
	stops[second]()
	stopped[second] = true
	if other := p.current(t, 3); other == second {
		t.Fatalf("the stopped node %d still runs the job", second)
	}
	if n := p.overlap.Load(); n != 0 {
		t.Errorf("the job ran on two nodes at once %d times", n)
	}

	lite, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	q := &leaderProbe{running: map[int]bool{}}
	stop := leadJobs(context.Background(), electorFor(lite, time.Second, log), log, q.job(7))
	if who := q.current(t, 1); who != 7 {
		t.Errorf("embedded store: the job runs on %d", who)
	}
	stop()
	if len(q.running) != 0 {
		t.Error("embedded store: the job still runs after stop")
	}
}
