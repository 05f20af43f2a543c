// Package passkey signs people in with WebAuthn passkeys held by platform
// authenticators (a fingerprint or face unlock on the user's own device).
//
// It owns four JSON endpoints: a signed-in user registers a passkey
// (register/begin, register/finish), and a person signs in with one
// (login/begin, login/finish), either as the second factor after the
// password (the pending first-step login of the console) or without a
// password at all (a discoverable credential, found by its user handle).
// Every passkey is created with user verification and a resident key, so
// a passkey proves possession and a biometric or PIN: a passkey sign-in
// counts as multi-factor.
//
// Challenges are kept on the server only, for two minutes, used at most
// once, and found through a random id held in a cookie. A credential whose
// signature counter does not move forward is refused as a possible clone,
// and the audit event says so. Credentials are stored as
// webauthn.Credential JSON in account.MFA.Passkeys; the user handle is the
// random account.MFA.WebAuthnID.
package passkey

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/policy"
)

// Directory is the part of the account directory passkeys need.
// Implementations are safe for concurrent use.
type Directory interface {
	// Get returns the account id, or an error wrapping account.ErrNotFound.
	Get(ctx context.Context, id string) (account.Account, error)
	// MFA returns id's second-factor material (zero value if none).
	MFA(ctx context.Context, id string) (account.MFA, error)
	// UpdateMFA applies fn to id's material and stores the result
	// atomically; if fn returns an error nothing is stored.
	UpdateMFA(ctx context.Context, id string, fn func(*account.MFA) error) error
}

// Handles finds the account that owns a WebAuthn user handle
// (account.MFA.WebAuthnID), for passwordless sign-in. It returns an error
// wrapping account.ErrNotFound when no account holds handle. If it also
// has a method Remember(handle []byte, user string), the Service tells it
// of every handle it makes. HandleIndex implements it over
// account.Directory.
type Handles interface {
	UserByHandle(ctx context.Context, handle []byte) (string, error)
}

// Sessions is the console's sign-in state (session.Manager).
type Sessions interface {
	// Principal returns the caller of r's fully signed-in session.
	Principal(r *http.Request) (policy.Principal, bool)
	// Pending returns the user of r's first-step login (password
	// accepted, second factor outstanding).
	Pending(r *http.Request) (user string, ok bool)
	// Complete ends a login proved by a passkey (method "passkey"): with
	// a pending login for user the session is "password+passkey", with
	// none it is a passwordless "passkey" session; both count as MFA. It
	// records the "login" audit event (failing with session.ErrAudit if
	// it cannot) and returns session.ErrMismatch when the browser's
	// pending login is another user's.
	Complete(w http.ResponseWriter, r *http.Request, user, method string) error
	// Elevate marks r's session as proved with a second factor (after a
	// passkey was registered in it), under a new cookie.
	Elevate(w http.ResponseWriter, r *http.Request, method string) error
	// Reauthenticated records that r's signed-in user just proved who
	// they are again, by method (step-up).
	Reauthenticated(r *http.Request, method string) error
}

// Auditor records security events durably; an error means the event was
// not recorded.
type Auditor interface {
	Record(ctx context.Context, e *audit.Event) error
}

// Config is what New needs.
type Config struct {
	RPID         string   // e.g. "phivault.example.org" or "localhost"
	RPName       string   // shown by the authenticator, e.g. "phivault"
	Origins      []string // exact origins the ceremonies may come from, e.g. "https://phivault.example.org"
	Directory    Directory
	Handles      Handles
	Sessions     Sessions
	Audit        Auditor
	Log          *slog.Logger     // nil: discard
	Now          func() time.Time // nil: time.Now
	ChallengeTTL time.Duration    // 0: 2 minutes
	// Redirect is where the browser goes after a login (default "/console/").
	Redirect string
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.RPID == "" {
		errs = append(errs, errors.New("passkey: RPID is required"))
	}
	if c.RPName == "" {
		errs = append(errs, errors.New("passkey: RPName is required"))
	}
	if len(c.Origins) == 0 {
		errs = append(errs, errors.New("passkey: at least one origin is required"))
	}
	if c.Directory == nil || c.Handles == nil || c.Sessions == nil || c.Audit == nil {
		errs = append(errs, errors.New("passkey: Directory, Handles, Sessions and Audit are required"))
	}
	if c.ChallengeTTL < 0 {
		errs = append(errs, errors.New("passkey: ChallengeTTL must not be negative"))
	}
	return errors.Join(errs...)
}

// Service runs the passkey ceremonies. It is safe for concurrent use.
type Service struct {
	c          Config
	wa         *webauthn.WebAuthn
	challenges *challenges
	origins    map[string]bool
}

// New checks cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ChallengeTTL == 0 {
		cfg.ChallengeTTL = 2 * time.Minute
	}
	if cfg.Redirect == "" {
		cfg.Redirect = "/console/"
	}
	required := true
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  cfg.RPID,
		RPDisplayName:         cfg.RPName,
		RPOrigins:             cfg.Origins,
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			AuthenticatorAttachment: protocol.Platform,
			RequireResidentKey:      &required,
			ResidentKey:             protocol.ResidentKeyRequirementRequired,
			UserVerification:        protocol.VerificationRequired,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: cfg.ChallengeTTL},
			Registration: webauthn.TimeoutConfig{Timeout: cfg.ChallengeTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	origins := make(map[string]bool, len(cfg.Origins))
	for _, o := range cfg.Origins {
		origins[o] = true
	}
	return &Service{c: cfg, wa: wa, challenges: newChallenges(cfg.ChallengeTTL, cfg.Now), origins: origins}, nil
}

// user adapts an account to webauthn.User.
type user struct {
	id, name string
	handle   []byte
	creds    []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return u.handle }
func (u *user) WebAuthnName() string                       { return u.id }
func (u *user) WebAuthnDisplayName() string                { return u.name }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

var _ webauthn.User = (*user)(nil)

// errNoAccount is the one answer for an unknown, disabled or passkey-less
// account, so a caller cannot tell them apart.
var errNoAccount = errors.New("passkey: no usable account")

// load returns id as a webauthn.User, refusing disabled accounts.
func (s *Service) load(ctx context.Context, id string) (*user, error) {
	acct, err := s.c.Directory.Get(ctx, id)
	if errors.Is(err, account.ErrNotFound) {
		return nil, errNoAccount
	}
	if err != nil {
		return nil, err
	}
	if acct.Disabled {
		return nil, errNoAccount
	}
	m, err := s.c.Directory.MFA(ctx, id)
	if err != nil {
		return nil, err
	}
	creds, err := decodeCredentials(m.Passkeys)
	if err != nil {
		return nil, err
	}
	name := acct.Name
	if name == "" {
		name = acct.ID
	}
	return &user{id: acct.ID, name: name, handle: m.WebAuthnID, creds: creds}, nil
}

// ensureHandle gives id a random user handle if it has none yet and
// returns the handle.
func (s *Service) ensureHandle(ctx context.Context, id string) ([]byte, error) {
	if m, err := s.c.Directory.MFA(ctx, id); err != nil {
		return nil, err
	} else if len(m.WebAuthnID) > 0 {
		return m.WebAuthnID, nil
	}
	var handle []byte
	err := s.c.Directory.UpdateMFA(ctx, id, func(m *account.MFA) error {
		if len(m.WebAuthnID) == 0 {
			m.WebAuthnID = make([]byte, 32)
			rand.Read(m.WebAuthnID)
		}
		handle = m.WebAuthnID
		return nil
	})
	if r, ok := s.c.Handles.(interface{ Remember([]byte, string) }); ok && err == nil {
		r.Remember(handle, id)
	}
	return handle, err
}

func decodeCredentials(raw []json.RawMessage) ([]webauthn.Credential, error) {
	creds := make([]webauthn.Credential, 0, len(raw))
	for _, r := range raw {
		var c webauthn.Credential
		if err := json.Unmarshal(r, &c); err != nil {
			return nil, fmt.Errorf("passkey: stored credential: %v", err)
		}
		creds = append(creds, c)
	}
	return creds, nil
}
