// Package policy decides every access to patient data. All data paths -
// read, search, history, writes, bundle entries, exports - ask Decide with
// the caller, the action, the target and the purpose, and deny unless a
// policy allows. The decision names the policies that made it, for the
// audit record.
package policy

import "context"

// Principal is an authenticated caller.
type Principal struct {
	UserID   string   // stable user id, or the client id for a system
	Roles    []string // e.g. "administrator", "physician"
	ClientID string   // OAuth client or app, if any
	Patient  string   // for patient users: their own Patient id
	Scopes   []string // OAuth scopes, if any
	Method   string   // how they authenticated, e.g. "bootstrap-token"
}

// Has reports whether p holds role.
func (p Principal) Has(role string) bool {
	for _, r := range p.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Action is what the caller wants to do.
type Action string

// Actions.
const (
	Read   Action = "read"   // read, vread, history
	Search Action = "search" // search; results are then checked with Read
	Create Action = "create"
	Update Action = "update"
	Delete Action = "delete"
	Export Action = "export"
	Admin  Action = "admin" // operator actions: keys, users, configuration
)

// Request is one access to decide.
type Request struct {
	Principal Principal
	Action    Action
	Type      string // resource type ("" for whole-system actions)
	ID        string // resource id, if known
	Patient   string // the patient compartment touched, if any
	Purpose   string // purpose of use (treatment, payment, operations, research, emergency)
}

// Decision is the outcome of Decide.
type Decision struct {
	Allow    bool
	Policies []string // ids of the policies that decided
	Reason   string   // client-safe explanation of a denial
}

// Decider is the policy decision point. Implementations must be safe for
// concurrent use and deny on any doubt (including their own errors).
type Decider interface {
	Decide(ctx context.Context, r Request) Decision
}

// Bootstrap is the decision point used until accounts and Cedar policies
// exist: the administrator role (held only by the bootstrap credential and
// operator tokens) is allowed everything; every other caller is denied.
type Bootstrap struct{}

var _ Decider = Bootstrap{}

// Decide implements Decider.
func (Bootstrap) Decide(_ context.Context, r Request) Decision {
	if r.Principal.Has("administrator") {
		return Decision{Allow: true, Policies: []string{"bootstrap-administrator"}}
	}
	return Decision{Allow: false, Policies: []string{"default-deny"}, Reason: "no policy allows this access"}
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p; the server's authentication
// middleware sets it and nothing else does.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller set by WithPrincipal.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
