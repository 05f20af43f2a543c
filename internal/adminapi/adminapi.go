// Package adminapi serves user administration and the access review over
// HTTPS, under /admin/v1/: list, create, disable, enable, unlock and revoke
// accounts, replace their roles, record training, read the access review
// (JSON or CSV) and recertify grants. It owns no state: every change is
// made by the account directory, which audits it and serves it to the
// next request's authentication at once (so a disable or a revocation
// ends the account's sessions and tokens on this node immediately, on
// other nodes within the directory's 2 s refresh).
//
// Every call is authenticated (a bearer token, or a console session),
// decided by the policy engine with Action "admin" on Type "Account" (no
// patient), and audited: reads are recorded before any data is sent
// (fail-closed, 503 if the record cannot be made), changes are recorded by
// the directory, and denials, failed authentications and refused input are
// recorded here. The access review may also be read by whoever the policy
// lets read the audit log (Action "audit-read"): the review is an
// oversight report built partly from that log (break-the-glass uses).
//
// Console sessions are ambient credentials: a state-changing call made
// with one must carry the session's CSRF token (X-CSRF-Token) and come
// from a session that proved who it is recently (step-up). Bearer tokens
// of accounts are minted on the operator path and are non-interactive;
// they need neither. SMART tokens never reach the admin action (no scope
// grants it).
package adminapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/policy"
)

// Authenticator turns a bearer token into a principal (authn.Bearer). Any
// error means the token is not accepted. Safe for concurrent use.
type Authenticator interface {
	Check(token string) (policy.Principal, error)
}

// Sessions finds the console user of a browser request and guards
// state-changing requests (session.Manager). Safe for concurrent use.
type Sessions interface {
	// Principal returns the signed-in user of r, if any.
	Principal(r *http.Request) (policy.Principal, bool)
	// Check returns an error unless r carries the session's CSRF token
	// and is not a cross-site browser request.
	Check(r *http.Request) error
	// StepUp reports whether the session's user proved who they are
	// recently (signing in or re-authenticating).
	StepUp(r *http.Request) bool
}

// Auditor durably records an event; nil means durable (audit.Log).
type Auditor interface {
	Record(ctx context.Context, e *audit.Event) error
}

// Config is what Routes needs. Accounts, Auth, Policy and Audit are
// required.
type Config struct {
	Accounts *account.Directory
	Auth     Authenticator
	Sessions Sessions // nil: bearer tokens only
	Policy   policy.Decider
	Audit    Auditor
	Log      *slog.Logger     // nil: discard
	Now      func() time.Time // clock of audit events; nil: time.Now
}

// Prefix is where the API lives.
const Prefix = "/admin/v1/"

// resourceType is the policy Type of every admin decision.
const resourceType = "Account"

// api is one configured API.
type api struct{ c Config }

// Routes returns the API's handlers by ServeMux pattern, for
// server.Config.Routes (which adds security headers, limits and metrics).
func Routes(c Config) (map[string]http.Handler, error) {
	if c.Accounts == nil || c.Auth == nil || c.Policy == nil || c.Audit == nil {
		return nil, errors.New("adminapi: Accounts, Auth, Policy and Audit are required")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	a := &api{c: c}
	users, review := Prefix+"users", Prefix+"access-review"
	return map[string]http.Handler{
		"GET " + review:                    a.handle("access-review", "", a.review),
		"POST " + review + "/{id}":         a.handle("user-recertify", "id", a.recertify),
		"GET " + users:                     a.handle("user-list", "", a.list),
		"POST " + users:                    a.handle("user-create", "", a.create),
		"GET " + users + "/{id}":           a.handle("user-read", "id", a.show),
		"POST " + users + "/{id}/disable":  a.handle("user-disable", "id", a.disable),
		"POST " + users + "/{id}/enable":   a.handle("user-enable", "id", a.enable),
		"POST " + users + "/{id}/unlock":   a.handle("user-unlock", "id", a.unlock),
		"POST " + users + "/{id}/revoke":   a.handle("user-revoke", "id", a.revoke),
		"PUT " + users + "/{id}/roles":     a.handle("user-update", "id", a.roles),
		"POST " + users + "/{id}/training": a.handle("training-record", "id", a.training),
	}, nil
}

// call is one request being served.
type call struct {
	w       http.ResponseWriter
	r       *http.Request
	who     policy.Principal
	target  string // the account named in the path, if any
	ev      audit.Event
	session bool // authenticated by a console session
}

// apiError is an answer meant for the client: its message is safe to show.
type apiError struct {
	status int
	code   string // OperationOutcome issue code
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// handle authenticates, decides and audits around fn, which does the work
// and writes the success answer (recording the audit event of a read
// first). interaction names the audit events; param is the path value
// naming the target account ("" for none).
func (a *api) handle(interaction, param string, fn func(*call) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{w: w, r: r, ev: audit.Event{Time: a.c.Now(), Interaction: interaction, Action: actionCode(r.Method, interaction),
			SourceIP: hostOf(r.RemoteAddr), UserAgent: r.UserAgent(), Purpose: purpose(r)}}
		if param != "" {
			c.target = r.PathValue(param)
			c.ev.Entities = []string{"urn:phivault:user:" + c.target}
		}
		if !a.authenticate(c) {
			return
		}
		unsafe := r.Method != http.MethodGet && r.Method != http.MethodHead
		if c.session && unsafe && a.c.Sessions.Check(r) != nil {
			a.fail(c, errorf(http.StatusForbidden, "forbidden",
				"cross-site request refused: a change made with a console session needs the session's CSRF token in the X-CSRF-Token header"))
			return
		}
		if c.target != "" {
			if err := account.ValidID(c.target); err != nil {
				c.ev.Entities = nil // not an id: keep it out of the log
				a.fail(c, errorf(http.StatusBadRequest, "invalid", "%s", clientText(err)))
				return
			}
		}
		if !a.allowed(c, interaction) {
			return
		}
		if c.session && unsafe && !a.c.Sessions.StepUp(r) {
			a.fail(c, errorf(http.StatusForbidden, "forbidden",
				"re-authenticate first: a change made with a console session needs a sign-in or step-up within the last few minutes"))
			return
		}
		if err := fn(c); err != nil {
			a.fail(c, a.clientError(c, err))
		}
	})
}

// authenticate finds the caller: the bearer token when an Authorization
// header is sent, else the console session. A failure is audited and
// answered 401.
func (a *api) authenticate(c *call) bool {
	var p policy.Principal
	ok := false
	if h := c.r.Header.Get("Authorization"); h != "" {
		if tok, bearer := strings.CutPrefix(h, "Bearer "); bearer {
			var err error
			p, err = a.c.Auth.Check(strings.TrimSpace(tok))
			ok = err == nil
		}
	} else if a.c.Sessions != nil {
		p, ok = a.c.Sessions.Principal(c.r)
		c.session = ok
	}
	if !ok {
		ev := c.ev
		ev.Interaction, ev.Action, ev.Entities = "login-failed", "E", nil
		ev.Policies = []string{"authentication"}
		c.ev = ev
		c.w.Header().Set("WWW-Authenticate", `Bearer realm="phivault"`)
		a.fail(c, errorf(http.StatusUnauthorized, "login", "a valid bearer token (Authorization: Bearer ...) or a console session is required"))
		return false
	}
	c.who = p
	c.ev.UserID, c.ev.Roles, c.ev.ClientID, c.ev.AuthMethod = p.UserID, p.Roles, p.ClientID, p.Method
	c.ev.BreakGlass = p.BreakGlass.Active(c.ev.Time)
	return true
}

// allowed asks the policy engine: Action admin on the Account type; for
// the access review, failing that, Action audit-read (the review is an
// oversight report over the audit log). A denial is audited, answered 403.
func (a *api) allowed(c *call, interaction string) bool {
	req := policy.Request{Principal: c.who, Action: policy.Admin, Type: resourceType, ID: c.target, Purpose: c.ev.Purpose}
	d := a.c.Policy.Decide(c.r.Context(), req)
	c.ev.Policies = d.Policies
	if !d.Allow && interaction == "access-review" {
		d2 := a.c.Policy.Decide(c.r.Context(), policy.Request{Principal: c.who, Action: policy.AuditRead, Type: "AuditEvent",
			ID: "access-review", Purpose: c.ev.Purpose})
		if d2.Allow {
			d = d2
		}
		c.ev.Policies = append(c.ev.Policies, d2.Policies...)
	}
	if !d.Allow {
		reason := d.Reason
		if reason == "" {
			reason = "no policy allows this access"
		}
		a.fail(c, errorf(http.StatusForbidden, "forbidden", "access denied: %s", reason))
		return false
	}
	c.ev.Allowed = true
	return true
}

// clientError maps an error of the directory to what the client is told;
// anything unexpected is logged and becomes "internal error".
func (a *api) clientError(c *call, err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, account.ErrNotFound):
		return errorf(http.StatusNotFound, "not-found", "no such user")
	case errors.Is(err, account.ErrExists):
		return errorf(http.StatusConflict, "duplicate", "the user id is taken")
	case errors.Is(err, account.ErrInvalid), errors.Is(err, account.ErrSeparation), errors.Is(err, account.ErrWeakPassword):
		return errorf(http.StatusBadRequest, "invalid", "%s", clientText(err))
	}
	a.c.Log.Error("adminapi: request failed", "interaction", c.ev.Interaction, "err", err)
	return errorf(http.StatusInternalServerError, "exception", "internal error")
}

// clientText is an account error's message without its package prefix.
func clientText(err error) string {
	return strings.ReplaceAll(err.Error(), "account: ", "")
}

// fail audits a refused call and answers e as an OperationOutcome. If the
// audit record cannot be made the answer is 503 instead.
func (a *api) fail(c *call, e *apiError) {
	// c.ev.Allowed stays the policy's decision: a request the policy
	// permitted that then failed (bad body, unknown user) is a permitted
	// failure, not a denial.
	c.ev.Outcome, c.ev.OutcomeDesc = audit.MinorFailure, e.msg
	if e.status >= 500 {
		c.ev.Outcome = audit.SeriousFail
	}
	if err := a.c.Audit.Record(c.r.Context(), &c.ev); err != nil {
		a.c.Log.Error("adminapi: the audit log is unavailable", "err", err)
		e = errorf(http.StatusServiceUnavailable, "transient", "the audit log is unavailable")
	}
	writeJSON(c.w, e.status, outcome(e))
}

// recordRead durably records a successful read before its data is sent.
func (a *api) recordRead(c *call) error {
	c.ev.Outcome, c.ev.Allowed = audit.Success, true
	if err := a.c.Audit.Record(c.r.Context(), &c.ev); err != nil {
		a.c.Log.Error("adminapi: the audit log is unavailable", "err", err)
		return errorf(http.StatusServiceUnavailable, "transient", "the audit log is unavailable")
	}
	return nil
}

// by names the caller in the directory's own audit records.
func (c *call) by() string { return c.who.UserID }

func outcome(e *apiError) map[string]any {
	return map[string]any{"resourceType": "OperationOutcome",
		"issue": []any{map[string]any{"severity": "error", "code": e.code, "diagnostics": e.msg}}}
}

func actionCode(method, interaction string) string {
	switch {
	case method == http.MethodGet || method == http.MethodHead:
		return "R"
	case interaction == "user-create":
		return "C"
	}
	return "U"
}

// purpose is the declared purpose of use (X-Purpose-Of-Use), operations
// by default.
func purpose(r *http.Request) string {
	if p := r.Header.Get("X-Purpose-Of-Use"); p != "" && len(p) <= 32 {
		return p
	}
	return "HOPERAT"
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
