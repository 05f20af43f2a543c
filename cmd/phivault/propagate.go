package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/store"
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
func watchChanges(ctx context.Context, db store.Backend, accounts *account.Directory, log *slog.Logger) (stop func()) {
	pg, ok := db.(*postgres.Backend)
	if !ok {
		return func() {}
	}
	pg.NotifyChanges(account.ChangePrefix)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		pg.Listen(ctx, log, func(key string) {
			if key == "" || strings.HasPrefix(key, account.ChangePrefix) {
				accounts.Changed(key)
			}
		})
	})
	return func() { cancel(); wg.Wait() }
}
