package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
)

// leaderRole names the leadership under which a cluster's jobs run.
const leaderRole = "jobs"

// leaderJob is a cluster-wide job: it runs on one node at a time, the
// leader. run works over st (the node's store, fenced to the leader's
// term: once the term has ended, st refuses its writes) until ctx ends,
// and returns when it has stopped. A job with a nil run is skipped.
type leaderJob struct {
	name string
	run  func(ctx context.Context, st store.Backend)
}

// leaderTerm is one leadership term of this node.
type leaderTerm interface {
	Lost() <-chan struct{} // closed when the term ends
	Resign()               // ends the term and waits until Lost is closed
	Fenced() store.Backend // the node's store, refusing writes once the term has ended
}

// elector makes this node the leader: campaign blocks until it leads or
// ctx ends (returning ctx's error).
type elector interface {
	campaign(ctx context.Context) (leaderTerm, error)
}

// electorFor returns how db's nodes choose their leader: an advisory lock
// on PostgreSQL, where several nodes share the store; on the embedded
// store the node holding the data directory's lock is the only one.
func electorFor(db store.Backend, interval time.Duration, log *slog.Logger) elector {
	if pg, ok := db.(*postgres.Backend); ok {
		return &pgElector{e: pg.Elector(leaderRole, postgres.ElectorOptions{Interval: interval, Logger: log}), settle: interval, rest: 3 * interval}
	}
	return soleElector{db}
}

// pgElector campaigns through a PostgreSQL advisory lock. A node whose
// term ended (its connection to the database failed) rests for a few
// campaign intervals before it campaigns again, so that a node with a
// sound connection takes over rather than the one that just failed.
//
// A node that took the lock waits settle (one campaign interval) before
// its term begins: the server frees the lock the moment the previous
// leader's session ends, and that leader stops its jobs only once it has
// seen its connection fail, which takes it up to about that long. Writes
// are fenced to the term either way (postgres.Term.Fenced); the wait keeps
// the jobs themselves from running on two nodes at once.
type pgElector struct {
	e      *postgres.Elector
	settle time.Duration
	rest   time.Duration
	led    bool
}

func (p *pgElector) campaign(ctx context.Context) (leaderTerm, error) {
	if p.led {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(p.rest):
		}
	}
	t, err := p.e.Campaign(ctx)
	if err != nil {
		return nil, err
	}
	p.led = true
	select {
	case <-ctx.Done():
		t.Resign()
		return nil, ctx.Err()
	case <-t.Lost(): // runTerm sees it at once and campaigns again
	case <-time.After(p.settle):
	}
	return t, nil
}

// soleElector makes the one process that holds the data directory the
// leader at once, for as long as it runs.
type soleElector struct{ db store.Backend }

func (s soleElector) campaign(ctx context.Context) (leaderTerm, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &soleTerm{db: s.db, lost: make(chan struct{})}, nil
}

type soleTerm struct {
	db   store.Backend
	once sync.Once
	lost chan struct{}
}

func (t *soleTerm) Lost() <-chan struct{} { return t.lost }
func (t *soleTerm) Resign()               { t.once.Do(func() { close(t.lost) }) }
func (t *soleTerm) Fenced() store.Backend { return t.db }

// leadJobs campaigns for leadership and runs jobs while this node leads.
// When the term ends (the connection holding it failed) the jobs are
// stopped at once and the node campaigns again. stop ends the campaign:
// a leading node stops its jobs (each finishing its work, such as a final
// checkpoint, while still leader) and then resigns, so another node takes
// over without waiting.
func leadJobs(ctx context.Context, el elector, log *slog.Logger, jobs ...leaderJob) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			t, err := el.campaign(ctx)
			if err != nil {
				return // ctx ended
			}
			runTerm(ctx, t, log, jobs)
		}
	}()
	return func() { cancel(); <-done }
}

// runTerm runs jobs until t ends or ctx does, and stops them.
func runTerm(ctx context.Context, t leaderTerm, log *slog.Logger, jobs []leaderJob) {
	jctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	st := t.Fenced()
	var names []string
	for _, j := range jobs {
		if j.run != nil {
			names = append(names, j.name)
			wg.Go(func() { j.run(jctx, st) })
		}
	}
	log.Info("cluster jobs started on this node (leader)", "jobs", names)
	select {
	case <-ctx.Done():
	case <-t.Lost():
		log.Warn("leadership lost: cluster jobs stopped on this node; campaigning again")
	}
	cancel()
	wg.Wait()
	t.Resign()
}

// checkpointJob integrates the audit log's Merkle tree and signs its
// checkpoints. On a clean stop it signs a final checkpoint; after the term
// was lost the store refuses that, and the new leader signs.
func checkpointJob(signer note.Signer, witnesses []audit.Witness, log *slog.Logger) leaderJob {
	return leaderJob{name: "audit-checkpoint", run: func(ctx context.Context, st store.Backend) {
		ckpt := audit.NewCheckpointer(st, audit.NewIntegrator(st), signer, audit.CheckpointerOptions{Witnesses: witnesses, Logger: log})
		ckpt.Start(ctx)
		<-ctx.Done()
		if err := ckpt.Stop(); err != nil && !errors.Is(err, postgres.ErrNotLeader) {
			log.Error("audit: final checkpoint failed", "err", err)
		}
	}}
}
