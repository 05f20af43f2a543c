package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
)

// campaign runs e.Campaign in a goroutine; the term arrives on the channel.
func campaign(ctx context.Context, e *postgres.Elector) <-chan *postgres.Term {
	c := make(chan *postgres.Term, 1)
	go func() {
		t, err := e.Campaign(ctx)
		if err == nil {
			c <- t
		}
		close(c)
	}()
	return c
}

func setMeta(st store.Backend, k, v string) error {
	return st.Update(context.Background(), func(w store.Writer) error { return w.SetMeta(k, []byte(v)) })
}

// TestLeaderFailover runs two nodes campaigning for one role: exactly one
// leads; when the session holding its lock is terminated on the server,
// its term ends at once, its fenced writes are refused, and the other node
// takes over well within 10 seconds. A job run only while leading never
// runs on both at once.
func TestLeaderFailover(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	nodes := []*postgres.Backend{open(t, dsn), open(t, dsn)}
	var electors []*postgres.Elector
	for _, n := range nodes {
		t.Cleanup(func() { n.Close() })
		electors = append(electors, n.Elector("jobs", postgres.ElectorOptions{Interval: 200 * time.Millisecond, Logger: log}))
	}
	var running, overlaps atomic.Int32
	job := func(term *postgres.Term) {
		if running.Add(1) > 1 {
			overlaps.Add(1)
		}
		<-term.Lost()
		running.Add(-1)
	}
	terms := []<-chan *postgres.Term{campaign(ctx, electors[0]), campaign(ctx, electors[1])}
	var first *postgres.Term
	var leader int
	select {
	case first = <-terms[0]:
	case first = <-terms[1]:
		leader = 1
	case <-time.After(10 * time.Second):
		t.Fatal("no node became leader within 10s")
	}
	go job(first)
	other := 1 - leader
	select {
	case t2 := <-terms[other]:
		t.Fatalf("both nodes lead (pids %d and %d)", first.PID(), t2.PID())
	case <-time.After(time.Second): // five campaign intervals
	}
	if err := setMeta(first.Fenced(), "by-leader", "1"); err != nil {
		t.Fatalf("fenced write while leading: %v", err)
	}

	start := time.Now()
	pgtest.Exec(t, pgtest.AdminDSN(t), fmt.Sprintf("SELECT pg_terminate_backend(%d)", first.PID()))
	select {
	case <-first.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the leader did not notice its terminated session within 5s")
	}
	lostAfter := time.Since(start)
	var second *postgres.Term
	select {
	case second = <-terms[other]:
	case <-time.After(10 * time.Second):
		t.Fatal("the other node did not take over within 10s")
	}
	t.Logf("term ended %v after its session was terminated; the other node led %v after", lostAfter, time.Since(start))
	go job(second)
	if err := setMeta(first.Fenced(), "by-old-leader", "1"); !errors.Is(err, postgres.ErrNotLeader) {
		t.Errorf("fenced write of the ended term: %v, want ErrNotLeader", err)
	}
	if err := setMeta(second.Fenced(), "by-new-leader", "1"); err != nil {
		t.Fatalf("fenced write of the new leader: %v", err)
	}
	err := nodes[0].View(context.Background(), func(r store.Reader) error {
		if _, err := r.Meta("by-old-leader"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("the old leader's fenced write is stored (%v)", err)
		}
		_, err := r.Meta("by-new-leader")
		return err
	})
	if err != nil {
		t.Error(err)
	}

	// The first node campaigns again and waits: the lock is taken.
	again := campaign(ctx, electors[leader])
	select {
	case <-again:
		t.Fatal("the old leader leads again while the new one holds the lock")
	case <-time.After(time.Second):
	}
	second.Resign()
	select {
	case <-second.Lost():
	default:
		t.Error("Resign returned before Lost was closed")
	}
	select {
	case third := <-again:
		third.Resign()
	case <-time.After(10 * time.Second):
		t.Fatal("no takeover within 10s after Resign")
	}
	if n := overlaps.Load(); n != 0 {
		t.Errorf("the leader-only job ran on two nodes at once %d times", n)
	}
}

// TestLeaderPerSchema: installations in two schemas of one database elect
// their leaders separately.
func TestLeaderPerSchema(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := open(t, pgtest.DSN(t)), open(t, pgtest.DSN(t))
	defer a.Close()
	defer b.Close()
	log := slog.New(slog.DiscardHandler)
	ta, err := a.Elector("jobs", postgres.ElectorOptions{Logger: log}).Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ta.Resign()
	tb, err := b.Elector("jobs", postgres.ElectorOptions{Logger: log}).Campaign(ctx)
	if err != nil {
		t.Fatalf("the second schema's node could not lead: %v", err)
	}
	tb.Resign()
}

// TestLeaderCampaignEnds: a campaign that cannot win ends with its ctx.
func TestLeaderCampaignEnds(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()
	log := slog.New(slog.DiscardHandler)
	ta, err := a.Elector("jobs", postgres.ElectorOptions{Logger: log}).Campaign(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ta.Resign()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if tb, err := b.Elector("jobs", postgres.ElectorOptions{Interval: 100 * time.Millisecond, Logger: log}).Campaign(ctx); !errors.Is(err, context.DeadlineExceeded) {
		if tb != nil {
			tb.Resign()
		}
		t.Fatalf("Campaign against a held lock: %v, want DeadlineExceeded", err)
	}
}
