package web_test

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/session"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/server"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/web"
)

// Example shows how `serve` wires the console: one session manager over
// the account directory and the audit log, its sweeper, and the console's
// routes (with any extra ones, such as the passkey ceremonies) added to
// server.Config.Routes.
func Example() {
	var (
		ctx     context.Context    // the server's lifetime
		dir     *account.Directory // account.Open(...)
		log     *audit.Log         // audit.NewLog(...)
		b       *barrier.Barrier   // barrier.Open(...)
		st      store.Backend      // the data directory's store
		logger  *slog.Logger
		passkey map[string]http.Handler // passkey.Service.Routes(), if enabled
		cfg     server.Config
	)
	if ctx == nil { // the example only compiles; it has nothing to serve
		return
	}
	keep, err := session.NewStoreKeeper(ctx, st, b) // sessions survive restarts, shared by nodes
	if err != nil {
		return // serve reports err and stops
	}
	sessions, err := session.New(session.Options{
		Accounts: dir, Audit: log, Log: logger, Keep: keep,
		ReasonHash: func(reason string) string { return hex.EncodeToString(b.Token("break-glass-reason", reason)) },
	})
	if err != nil {
		return // serve reports err and stops
	}
	go sessions.Run(ctx, time.Minute) // audited automatic logoff of abandoned sessions
	routes, err := web.Handler(web.Options{
		Sessions: sessions, Accounts: dir, Audit: log, Log: logger,
		Passkeys: passkey != nil, Extra: passkey,
	})
	if err != nil {
		return // serve reports err and stops
	}
	cfg.Routes = map[string]http.Handler{}
	for pattern, h := range routes {
		cfg.Routes[pattern] = h
	}
	_ = server.Handler(cfg)
}
