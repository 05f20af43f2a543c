package postgres

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// channelSQL names the LISTEN/NOTIFY channel of the schema a connection
// uses: channels are database-wide, so installations in separate schemas
// must not hear each other. A hash keeps it under the 63-byte limit.
const channelSQL = `'phivault_' || substr(md5(current_schema()), 1, 16)`

// NotifyChanges makes every later write (SetMeta, CreateMeta, DeleteMeta)
// of a metadata key under one of prefixes also notify the nodes that
// Listen, with the key as payload. The notification is part of the
// write's transaction: it is delivered when, and only if, the write
// commits. Keys are opaque to the database already (phivault names
// records by blind tokens), so the payload reveals nothing more. Each call
// replaces the previous prefixes.
func (b *Backend) NotifyChanges(prefixes ...string) {
	p := append([]string(nil), prefixes...)
	b.notify.Store(&p)
}

// notifies reports whether a write of key must notify.
func (b *Backend) notifies(key string) bool {
	p := b.notify.Load()
	if p == nil {
		return false
	}
	for _, pre := range *p {
		if strings.HasPrefix(key, pre) {
			return true
		}
	}
	return false
}

// noteChange notifies the listeners of a write of key, in w's transaction.
func (w *writer) noteChange(key string) error {
	if w.b == nil || !w.b.notifies(key) {
		return nil
	}
	_, err := w.exec(`SELECT pg_notify(`+channelSQL+`, $1)`, key)
	return err
}

// Listen calls fn with the key of every change that a node's NotifyChanges
// announced (this node's own included), until ctx ends. It holds a
// connection of its own; when that connection is lost it reconnects (every
// second until it can) and then calls fn with "", meaning that changes may
// have been missed meanwhile. fn runs on Listen's goroutine and must not
// block. Failures are logged; Listen returns only when ctx ends.
func (b *Backend) Listen(ctx context.Context, log *slog.Logger, fn func(key string)) {
	cfg := b.wpool.Config().ConnConfig.Copy()
	cfg.Tracer = nil // its notifications are not the writer's progress
	missed := false
	for ctx.Err() == nil {
		err := b.listenOnce(ctx, cfg, func() {
			if missed {
				fn("")
			}
			missed = true
		}, fn)
		if ctx.Err() != nil {
			return
		}
		log.Warn("postgres: change notifications interrupted; reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// listenOnce listens on one connection until it fails or ctx ends;
// listening is called once the LISTEN took effect.
func (b *Backend) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, listening func(), fn func(string)) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var channel string
	if err := conn.QueryRow(ctx, `SELECT `+channelSQL).Scan(&channel); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil
			}
			return err
		}
		fn(n.Payload)
	}
}
