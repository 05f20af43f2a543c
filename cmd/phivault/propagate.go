package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store/postgres"
)

// watchChanges carries account changes between the nodes of a cluster at
// once: this node's writes of account records notify the other nodes
// (PostgreSQL NOTIFY, in the write's transaction), and the notifications
// this node hears drop the named account from its cache, so a user
// disabled or revoked on one node is refused on every node at their next
// request. When notifications may have been missed (the listening
// connection was lost) every cached account is dropped; the cache's own
// refresh (2 s) remains the fallback throughout. On the embedded store
// there is one node and nothing to do. stop ends the listener.
//
// Erasures travel the same way: the destruction markers of data keys
// (barrier.DestroyedPrefix) notify too, and destroyed is called for each
// (and after missed notifications) so that the barrier drops the keys from
// its cache now rather than at its next periodic listing.
//
// So does the policy set (policyMeta): a notification of it, or missed
// notifications, make the node re-read the store's set and swap it in;
// every policyPollInterval it re-reads it anyway (a hash comparison when
// nothing changed), so that a set installed on one node is in force on
// every node within seconds even if a notification is lost. A set that
// does not load there leaves the working one in force (policySync.reload).
// pol is the node's (n.polSync); nil: no policy reloads.
//
// Custom SearchParameters stored by another node are taken into use within
// policyPollInterval (search.Engine.Refresh).
//
// And an operator's seal (sealEpochMeta): a node whose key file is split
// seals itself when the cluster's seal epoch passes the one it was
// unsealed at, on the notification or at its sealPollInterval poll
// (followSeal).
func watchChanges(ctx context.Context, n *node, accounts *account.Directory, log *slog.Logger) (stop func()) {
	pg, ok := n.db.(*postgres.Backend)
	if !ok {
		return func() {}
	}
	destroyed, pol := n.barrier.NoteDestroyed, n.polSync
	pg.NotifyChanges(account.ChangePrefix, barrier.DestroyedPrefix, policyMeta, sealEpochMeta)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Reloads and seal checks read the store: off the Listen goroutine,
	// which must not block.
	reloadPolicy, checkSeal := func() {}, func() {}
	if pol != nil {
		reloadPolicy = rerun(ctx, &wg, policyPollInterval, func() { pol.reload(ctx, log) })
	}
	if n.seal != nil {
		checkSeal = rerun(ctx, &wg, sealPollInterval, func() { n.followSeal(ctx, log) })
	}
	// Custom SearchParameters written on another node: polled (one
	// indexed read when nothing changed).
	rerun(ctx, &wg, policyPollInterval, func() {
		if err := n.search.Refresh(ctx); err != nil && ctx.Err() == nil {
			log.Warn("custom search parameters not refreshed; retrying", "err", err)
		}
	})
	wg.Go(func() {
		pg.Listen(ctx, log, func(key string) {
			if key == "" || key == sealEpochMeta {
				checkSeal()
			}
			if key == "" || strings.HasPrefix(key, account.ChangePrefix) {
				accounts.Changed(key)
			}
			if key == "" || strings.HasPrefix(key, barrier.DestroyedPrefix) {
				destroyed()
			}
			if key == "" || key == policyMeta {
				reloadPolicy()
			}
		})
	})
	return func() { cancel(); wg.Wait() }
}

// rerun calls fn on a goroutine of wg every interval, and as soon as the
// returned wake is called, until ctx ends. wake never blocks: a call while
// a run is pending already is folded into it (fn reads the latest state).
func rerun(ctx context.Context, wg *sync.WaitGroup, every time.Duration, fn func()) (wake func()) {
	ch := make(chan struct{}, 1)
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
			case <-t.C:
			}
			fn()
		}
	})
	return func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
