package main

import (
	"context"
	"net/http"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// readyTimeout bounds the store read behind GET /readyz.
const readyTimeout = 2 * time.Second

// readyHandler answers GET /readyz, the readiness check for load
// balancers: 200 when this node can serve requests (its store answers a
// read, the audit log's size, within readyTimeout), 503 otherwise. A
// sealed node answers 503 through its gate before this runs. GET /healthz
// stays the liveness check (the process answers at all); a load balancer
// routes on /readyz. The answer names no data and no error detail.
func (n *node) readyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		err := n.db.View(ctx, func(rd store.Reader) error {
			_, err := rd.AuditSize()
			return err
		})
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err != nil {
			n.log.Warn("readiness check: the store does not answer", "err", err)
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: the database does not answer\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
}
