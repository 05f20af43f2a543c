// Package policy decides every access to patient data. All data paths -
// read, search, history, writes, bundle entries, exports - ask Decide with
// the caller, the action, the target and the purpose, and deny unless a
// policy allows. The decision names the policies that made it, for the
// audit record.
//
// Engine is the decision point: Cedar policies (DefaultPolicies, or a set
// the security officer supplies through Replace) over facts computed in Go
// from the request, the caller's care relationships and the patient's
// consents (Facts), the break-the-glass window and the SMART scopes
// (ParseScope). Bootstrap remains for code not yet wired to the Engine.
package policy

import (
	"context"
	"time"
)

// Principal is an authenticated caller. The authenticator resolves it
// afresh for each request from the account (roles, training, disabled
// state), so a change to an account reaches decisions at once.
type Principal struct {
	UserID   string   // stable user id, or the client id for a system
	Roles    []string // e.g. "administrator", "physician"
	ClientID string   // OAuth client or app, if any
	Patient  string   // for patient users: their own Patient id; for SMART launches: the patient in context
	Scopes   []string // OAuth scopes, if any (nil: not an OAuth token, no scope limit)
	Method   string   // how they authenticated, e.g. "password+totp", "smart", "operator-token"

	Practitioner string    // FHIR Practitioner id the user acts as, if any
	Department   string    // the user's department (Organization id or code), if any
	MFA          bool      // the session was proved with a second factor
	AuthTime     time.Time // when the user last proved who they are (for step-up)
	SessionID    string    // session or token family, for revocation and audit
	Trained      bool      // HIPAA training is on record and current (the training gate)
	BreakGlass   *BreakGlass
}

// BreakGlass is an emergency access window the user opened with a reason
// and step-up authentication. Every access during it is flagged in audit.
type BreakGlass struct {
	Reason string
	Until  time.Time
}

// Active reports whether b is an open window at now.
func (b *BreakGlass) Active(now time.Time) bool { return b != nil && now.Before(b.Until) }

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
	// AuditRead reads the audit log: events, proofs, checkpoints, and a
	// patient's access report (Request.Patient names the patient).
	AuditRead Action = "audit-read"
)

// Request is one access to decide.
type Request struct {
	Principal Principal
	Action    Action
	Type      string // resource type ("" for whole-system actions)
	ID        string // resource id, if known
	Patient   string // the patient compartment touched, if any
	Purpose   string // purpose of use (treatment, payment, operations, research, emergency)
	// Labels are the target's meta.security codes (e.g. "R", "V", "HIV")
	// and Category its category codes, when the caller has the resource
	// at hand; consent rules and restricted-record policies use them.
	Labels   []string
	Category []string
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

// Facts answers the questions about stored data that decisions depend
// on. Implementations read through records (never plaintext indexes),
// must be safe for concurrent use, and may cache for a few seconds.
type Facts interface {
	// Relationships names the care relationships between a practitioner
	// and a patient ("careteam", "encounter", "appointment",
	// "general-practitioner", "practitioner-role", "assignment"); none: nil.
	Relationships(ctx context.Context, practitioner, patient string) ([]string, error)
	// Consents returns the patient's active Consent provisions, each
	// Consent's in document order: a provision before the nested
	// provisions that refine it (depth first), so that the last matching
	// provision of a Consent is the most specific.
	Consents(ctx context.Context, patient string) ([]Consent, error)
}

// Consent is one provision of an active FHIR Consent (patient privacy
// scope). A deny provision that matches a request denies it; a permit
// provision narrows nothing by itself but can allow what a deny-by-default
// consent ("deny all, permit these") excludes.
type Consent struct {
	ID      string   // Consent resource id, named in the decision
	Permit  bool     // provision.type: permit (true) or deny (false)
	Actors  []string // references such as "Practitioner/p1", "Organization/o1"; empty: everyone
	Classes []string // resource types (provision.class codes); empty: all
	Labels  []string // security labels / data categories (provision.securityLabel, provision.code); empty: all
	Purpose []string // purposes of use (v3 ActReason codes such as TREAT, HRESCH); empty: all
	Start   time.Time
	End     time.Time // zero: open
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
