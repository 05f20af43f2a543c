// Package account owns the people and systems that may sign in: their
// user ids, roles, password hashes (Argon2id), second-factor material,
// training records and the revocation state of their sessions and tokens.
// Records are stored sealed by the barrier under the "system" data key;
// the store sees only blind names and ciphertext.
package account

import (
	"encoding/json"
	"errors"
	"log/slog"
	"time"
)

// Roles known to the default policy set (docs/access.md). Accounts may hold
// only these.
var Roles = []string{
	"physician", "nurse", "front-desk", "billing", "researcher",
	"privacy-officer", "security-officer", "administrator", "auditor",
	"patient", "device", "vendor",
}

// Errors callers match with errors.Is. A failed login returns
// ErrBadCredentials whatever the cause (unknown user, wrong password,
// disabled or locked account), so a client cannot tell them apart.
var (
	ErrBadCredentials = errors.New("account: wrong user id or password")
	ErrThrottled      = errors.New("account: too many attempts; try again later")
	ErrNotFound       = errors.New("account: no such account")
	ErrExists         = errors.New("account: the user id is taken")
	ErrWeakPassword   = errors.New("account: the password is too short or too common")
	ErrDisabled       = errors.New("account: the account is disabled")
)

// Account is one user or system identity.
type Account struct {
	ID           string    `json:"id"` // unique, stable, case-sensitive
	Name         string    `json:"name"`
	Roles        []string  `json:"roles"`
	Practitioner string    `json:"practitioner,omitempty"` // FHIR Practitioner id the user acts as
	Patient      string    `json:"patient,omitempty"`      // for patient users: their own Patient id
	Department   string    `json:"department,omitempty"`
	Disabled     bool      `json:"disabled,omitempty"`
	Created      time.Time `json:"created"`
	LastLogin    time.Time `json:"lastLogin,omitzero"`
	// Epoch counts revocations: sessions and tokens carry the epoch they
	// were issued under and stop working when it moves on.
	Epoch    int        `json:"epoch"`
	Training []Training `json:"training,omitempty"`
	// MFAEnrolled lists the second factors set up ("totp", "passkey").
	MFAEnrolled []string `json:"mfaEnrolled,omitempty"`
	// LockedUntil is set by repeated failed logins: until then no password
	// logs in (Unlock clears it).
	LockedUntil time.Time `json:"lockedUntil,omitzero"`
	// Reviewed and ReviewedBy record the last access review (Recertify).
	Reviewed   time.Time `json:"reviewed,omitzero"`
	ReviewedBy string    `json:"reviewedBy,omitempty"`
}

// Training is one completed course (the HIPAA privacy and security
// training gates access to patient data).
type Training struct {
	Course    string    `json:"course"` // e.g. "hipaa"
	Completed time.Time `json:"completed"`
	Expires   time.Time `json:"expires"`
	Recorded  string    `json:"recordedBy"`
}

// MFA is an account's second-factor material, stored sealed apart from
// the account record.
type MFA struct {
	TOTPSecret   Secret            `json:"totpSecret,omitempty"`   // raw RFC 6238 key; empty: no TOTP
	TOTPLastStep int64             `json:"totpLastStep,omitempty"` // last accepted time step (no replay)
	Recovery     [][]byte          `json:"recovery,omitempty"`     // SHA-256 of each unused recovery code
	WebAuthnID   []byte            `json:"webauthnId,omitempty"`   // random user handle
	Passkeys     []json.RawMessage `json:"passkeys,omitempty"`     // webauthn.Credential, as JSON
}

// Secret is key material that never prints. encoding/json writes it as
// base64, which is how it is kept inside sealed records.
type Secret []byte

func (Secret) String() string       { return "**redacted**" }
func (Secret) GoString() string     { return "**redacted**" }
func (Secret) LogValue() slog.Value { return slog.StringValue("**redacted**") }
func (s Secret) Reveal() []byte     { return s }

// Password is a password as typed; it never prints.
type Password string

func (Password) String() string       { return "**redacted**" }
func (Password) GoString() string     { return "**redacted**" }
func (Password) LogValue() slog.Value { return slog.StringValue("**redacted**") }
func (Password) MarshalJSON() ([]byte, error) {
	return []byte(`"**redacted**"`), nil
}
