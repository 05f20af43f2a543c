package passkey

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/session"
)

const whyClone = "passkey refused: signature counter did not increase (possible cloned authenticator)"

// loginBegin starts a second factor for the browser's pending login, or
// a passwordless login when there is none.
func (s *Service) loginBegin(w http.ResponseWriter, r *http.Request) error {
	if id, ok := s.c.Sessions.Pending(r); ok {
		return s.beginFor(w, r, id, kindSecondFactor)
	}
	assertion, sess, err := s.wa.BeginDiscoverableLogin()
	if err != nil {
		return err
	}
	return s.begin(w, r, pending{kind: kindPasswordless, session: *sess}, assertion)
}

// beginFor starts an assertion restricted to id's passkeys.
func (s *Service) beginFor(w http.ResponseWriter, r *http.Request, id string, k kind) error {
	u, err := s.load(r.Context(), id)
	if errors.Is(err, errNoAccount) {
		return errSignIn
	} else if err != nil {
		return err
	}
	if len(u.creds) == 0 {
		return errNoPasskey
	}
	assertion, sess, err := s.wa.BeginLogin(u)
	if err != nil {
		return err
	}
	return s.begin(w, r, pending{kind: k, user: id, session: *sess}, assertion)
}

func (s *Service) loginFinish(w http.ResponseWriter, r *http.Request) error {
	p, body, err := s.finish(w, r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	switch p.kind {
	case kindSecondFactor:
		if id, ok := s.c.Sessions.Pending(r); !ok || id != p.user {
			return s.refuse(ctx, r, "login-failed", p.user, "passkey challenge used by another login", errWrongUser)
		}
	case kindPasswordless:
	default:
		return errWrongUser
	}
	u, err := s.assert(ctx, r, "login-failed", p, body)
	if err != nil {
		var he *httpError
		if f, ok := s.c.Sessions.(failer); ok && p.kind == kindSecondFactor && errors.As(err, &he) && he.status < 500 {
			f.Fail(r)
		}
		return err
	}
	switch err := s.c.Sessions.Complete(w, r, u.id, Method); {
	case errors.Is(err, session.ErrMismatch):
		return s.refuse(ctx, r, "login-failed", u.id, "passkey of another user than the pending login", errWrongUser)
	case errors.Is(err, session.ErrAudit):
		return errAudit
	case errors.Is(err, session.ErrFull):
		return errBusy
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": s.c.Redirect})
	return nil
}

// failer is implemented by Sessions that count wrong second factors
// against a pending login (session.Manager.Fail); a refused passkey counts
// like a wrong code.
type failer interface {
	Fail(r *http.Request) (left int)
}

// stepupBegin starts a re-authentication of the signed-in user.
func (s *Service) stepupBegin(w http.ResponseWriter, r *http.Request) error {
	pr, ok := s.c.Sessions.Principal(r)
	if !ok {
		return errSignIn
	}
	return s.beginFor(w, r, pr.UserID, kindStepUp)
}

// stepupFinish records that the signed-in user just proved a passkey
// (Sessions.Reauthenticated with "passkey"), for break-the-glass and
// other step-up checks.
func (s *Service) stepupFinish(w http.ResponseWriter, r *http.Request) error {
	pr, ok := s.c.Sessions.Principal(r)
	if !ok {
		return errSignIn
	}
	p, body, err := s.finish(w, r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if p.kind != kindStepUp || p.user != pr.UserID {
		return s.refuse(ctx, r, "step-up", pr.UserID, "passkey challenge used by another session", errWrongUser)
	}
	u, err := s.assert(ctx, r, "step-up", p, body)
	if err != nil {
		return err
	}
	if err := s.record(ctx, r, &audit.Event{Interaction: "step-up", Action: "E", Outcome: audit.Success, UserID: u.id, Roles: pr.Roles, AuthMethod: Method, Allowed: true}); err != nil {
		return err
	}
	if err := s.c.Sessions.Reauthenticated(r, Method); err != nil {
		return errSignIn
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

// assert verifies the assertion in body against the ceremony p, refuses
// a cloned authenticator and stores the new counter. Refusals are
// audited under interaction.
func (s *Service) assert(ctx context.Context, r *http.Request, interaction string, p pending, body []byte) (*user, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		return nil, s.refuse(ctx, r, interaction, p.user, "malformed passkey response", errMalformed)
	}
	var (
		u    *user
		cred *webauthn.Credential
	)
	if p.kind == kindPasswordless {
		var vu webauthn.User
		vu, cred, err = s.wa.ValidatePasskeyLogin(func(_, handle []byte) (webauthn.User, error) {
			id, err := s.c.Handles.UserByHandle(ctx, handle)
			if err != nil {
				return nil, err
			}
			return s.load(ctx, id)
		}, p.session, parsed)
		if err == nil {
			u = vu.(*user)
		}
	} else if u, err = s.load(ctx, p.user); err == nil {
		cred, err = s.wa.ValidateLogin(u, p.session, parsed)
	}
	if err != nil {
		s.c.Log.Info("passkey assertion refused", "err", err)
		return nil, s.refuse(ctx, r, interaction, p.user, "passkey not verified", errNotVerified)
	}
	if cred.Authenticator.CloneWarning {
		return nil, s.refuse(ctx, r, interaction, u.id, whyClone, errClone)
	}
	if err := s.saveCounter(ctx, u, cred); errors.Is(err, errClone) {
		return nil, s.refuse(ctx, r, interaction, u.id, whyClone, errClone)
	} else if err != nil {
		return nil, err
	}
	return u, nil
}

// saveCounter stores cred's new signature counter and flags. It re-checks
// the counter against the stored one, so two concurrent uses of one
// counter value cannot both pass.
func (s *Service) saveCounter(ctx context.Context, u *user, cred *webauthn.Credential) error {
	return s.c.Directory.UpdateMFA(ctx, u.id, func(m *account.MFA) error {
		for i, raw := range m.Passkeys {
			var c webauthn.Credential
			if err := json.Unmarshal(raw, &c); err != nil {
				return err
			}
			if !bytes.Equal(c.ID, cred.ID) {
				continue
			}
			if cred.Authenticator.SignCount != 0 && cred.Authenticator.SignCount <= c.Authenticator.SignCount {
				return errClone
			}
			out, err := json.Marshal(cred)
			if err != nil {
				return err
			}
			m.Passkeys[i] = out
			return nil
		}
		return errNotVerified // removed meanwhile
	})
}
