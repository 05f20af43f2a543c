package passkey

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/session"
	"github.com/phivault/phivault/internal/policy"
)

func (s *Service) registerBegin(w http.ResponseWriter, r *http.Request) error {
	pr, err := s.registrant(r)
	if err != nil {
		return err
	}
	id, ctx := pr.UserID, r.Context()
	if _, err := s.ensureHandle(ctx, id); err != nil {
		return err
	}
	u, err := s.load(ctx, id)
	if errors.Is(err, errNoAccount) {
		return errSignIn
	} else if err != nil {
		return err
	}
	if len(u.creds) >= maxPasskeys {
		return fail(http.StatusConflict, "this account has the most passkeys allowed; remove one first")
	}
	creation, sess, err := s.wa.BeginRegistration(u,
		webauthn.WithExclusions(webauthn.Credentials(u.creds).CredentialDescriptors()),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired))
	if err != nil {
		return err
	}
	return s.begin(w, r, pending{kind: kindRegister, user: id, session: *sess}, creation)
}

// registrant returns the signed-in user of r who may add a passkey: any
// signed-in user, but one who already has a second factor must have
// proved it in this session (a stolen password alone adds no passkey).
func (s *Service) registrant(r *http.Request) (policy.Principal, error) {
	p, ok := s.c.Sessions.Principal(r)
	if !ok {
		return p, errSignIn
	}
	if !p.MFA {
		m, err := s.c.Directory.MFA(r.Context(), p.UserID)
		if err != nil {
			return p, err
		}
		if len(m.TOTPSecret) > 0 || len(m.Passkeys) > 0 {
			return p, fail(http.StatusForbidden, "sign in with your second factor before adding a passkey")
		}
	}
	return p, nil
}

func (s *Service) registerFinish(w http.ResponseWriter, r *http.Request) error {
	pr, err := s.registrant(r)
	if err != nil {
		return err
	}
	id := pr.UserID
	p, body, err := s.finish(w, r)
	if err != nil {
		return err
	}
	if p.kind != kindRegister || p.user != id {
		return errWrongUser
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		return errMalformed
	}
	ctx := r.Context()
	u, err := s.load(ctx, id)
	if errors.Is(err, errNoAccount) {
		return errSignIn
	} else if err != nil {
		return err
	}
	cred, err := s.wa.CreateCredential(u, p.session, parsed)
	if err != nil {
		s.c.Log.Info("passkey registration refused", "err", err)
		return errNotVerified
	}
	raw, err := json.Marshal(cred)
	if err != nil {
		return err
	}
	err = s.c.Directory.UpdateMFA(ctx, id, func(m *account.MFA) error {
		if !bytes.Equal(m.WebAuthnID, u.handle) {
			return errWrongUser // the handle changed under us
		}
		stored, err := decodeCredentials(m.Passkeys)
		if err != nil {
			return err
		}
		for _, c := range stored {
			if bytes.Equal(c.ID, cred.ID) {
				return fail(http.StatusConflict, "this passkey is already registered")
			}
		}
		if len(stored) >= maxPasskeys {
			return fail(http.StatusConflict, "this account has the most passkeys allowed; remove one first")
		}
		m.Passkeys = append(m.Passkeys, raw)
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.record(ctx, r, &audit.Event{Interaction: "passkey-register", Action: "C", Outcome: audit.Success, UserID: id, Allowed: true}); err != nil {
		return err
	}
	// Like enrolling TOTP, registering a user-verified passkey proves a
	// second factor: a session without one is raised to MFA.
	if !pr.MFA {
		if err := s.c.Sessions.Elevate(w, r, pr.Method+"+"+Method); errors.Is(err, session.ErrAudit) {
			return errAudit
		} else if err != nil {
			return errSignIn
		}
	}
	writeJSON(w, http.StatusCreated, map[string]string{"redirect": s.c.Redirect})
	return nil
}
