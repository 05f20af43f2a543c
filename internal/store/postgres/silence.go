package postgres

import (
	"strconv"
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
	// groupTimeout bounds a group transaction from its BEGIN to its COMMIT,
	// retries included. Learning the outcome of a COMMIT whose answer was
	// lost takes at most outcomeTimeout more.
	groupTimeout = 30 * time.Second
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
