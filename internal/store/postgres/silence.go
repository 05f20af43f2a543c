package postgres

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// A database that stops answering, or a node cut off from it, must not
// hang either side. These bounds turn silence into errors (and so into
// 503s, store.ErrUnavailable) on the node, and free what a silent node
// held on the server.
const (
	// connectTimeout bounds a new connection when the DSN sets no
	// connect_timeout.
	connectTimeout = 5 * time.Second
	// beginTimeout bounds how long a View waits for its BEGIN, retries
	// included.
	beginTimeout = 5 * time.Second
	// silenceTimeout: a group transaction is abandoned (its connection
	// closed, its Updates failed) when the database finished none of its
	// statements for this long, retries included; a large group that
	// keeps making progress is not limited. Learning the outcome of a
	// COMMIT whose answer was lost takes at most outcomeTimeout more.
	silenceTimeout = 15 * time.Second
	// idleInTxTimeout: the server ends a writer session that stays idle
	// inside its transaction this long (a node cut off mid-group), which
	// rolls it back and releases the audit head lock that every node's
	// writes queue on. No statement gap of a live group comes near it.
	idleInTxTimeout = 15 * time.Second
)

// keepalives make the server notice a silent TCP peer after about
// 5 + 3x2 = 11 s instead of the operating system's default two hours; no
// effect on a unix socket.
var keepalives = map[string]string{"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "2", "tcp_keepalives_count": "3"}

// bound applies the defaults above to cfg; a value the DSN sets wins.
// writer adds the idle-in-transaction limit of the writer's sessions.
func bound(cfg *pgx.ConnConfig, writer bool) {
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	params := map[string]string{}
	for k, v := range keepalives {
		params[k] = v
	}
	if writer {
		params["idle_in_transaction_session_timeout"] = strconv.FormatInt(idleInTxTimeout.Milliseconds(), 10)
	}
	for k, v := range params {
		if _, set := cfg.RuntimeParams[k]; !set {
			cfg.RuntimeParams[k] = v
		}
	}
}

// progress records when the writer's connection last finished a
// statement: it is the writer pool's pgx QueryTracer.
type progress struct{ last atomic.Int64 } // unix nanoseconds

func (p *progress) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (p *progress) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {
	p.last.Store(time.Now().UnixNano())
}

// watch calls cancel once neither start nor the end of a statement is
// within silenceTimeout. The returned stop ends the watch.
func (p *progress) watch(start time.Time, cancel context.CancelFunc) (stop func() bool) {
	var t *time.Timer
	t = time.AfterFunc(silenceTimeout, func() {
		last := max(start.UnixNano(), p.last.Load())
		if left := time.Duration(last + int64(silenceTimeout) - time.Now().UnixNano()); left > 0 {
			t.Reset(left)
			return
		}
		cancel()
	})
	return t.Stop
}
