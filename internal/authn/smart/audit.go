package smart

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/phivault/phivault/internal/audit"
)

// Recorder is the audit log (audit.Log). Record must return only once the
// event is durable; on error the endpoint answers 503 and hands out
// nothing (fail closed).
type Recorder interface {
	Record(ctx context.Context, e *audit.Event) error
}

// record audits an outcome of the token or revocation endpoint. Events
// name clients, users, scopes' grant type and the launch patient; never a
// token, code or secret.
func (s *Server) record(r *http.Request, interaction, grantType string, allowed bool, desc string, g grant) error {
	ev := &audit.Event{Time: s.c.Now(), Interaction: interaction, Action: "E", Outcome: audit.Success, OutcomeDesc: desc,
		UserID: g.User, ClientID: g.ClientID, SourceIP: host(r.RemoteAddr), UserAgent: r.UserAgent(), AuthMethod: "smart:" + grantType,
		Allowed: allowed, Policies: []string{"smart-authorization"}}
	if g.Backend {
		ev.UserID = g.ClientID
	}
	if !allowed {
		ev.Outcome = audit.MinorFailure
	}
	if g.Patient != "" {
		ev.Patients = []string{g.Patient}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	return s.c.Audit.Record(ctx, ev)
}

func host(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
