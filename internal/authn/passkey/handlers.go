package passkey

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/authn/session"
)

const (
	// CookieName holds the id of the caller's begun ceremony.
	CookieName = "pv_passkey"
	// CSRFHeader must be sent, with the value "1", on every call. A
	// cross-origin page cannot add it without a CORS preflight, which
	// these routes never grant.
	CSRFHeader = "X-Phivault-Passkey"
	// Method is the sign-in method handed to Sessions.Complete.
	Method = "passkey"

	maxBody     = 64 << 10 // a WebAuthn response is a few KiB
	maxPasskeys = 20       // per account
)

// Routes returns the passkey endpoints by ServeMux pattern. Each takes and
// returns JSON; errors are {"error": "..."} with a 4xx or 5xx status.
func (s *Service) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"POST /passkey/register/begin":  s.guard(s.registerBegin),
		"POST /passkey/register/finish": s.guard(s.registerFinish),
		"POST /passkey/login/begin":     s.guard(s.loginBegin),
		"POST /passkey/login/finish":    s.guard(s.loginFinish),
	}
}

// httpError is an error with a status and a message meant for the client.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func fail(status int, msg string) error { return &httpError{status, msg} }

var (
	errSignIn     = fail(http.StatusUnauthorized, "sign in first")
	errChallenge  = fail(http.StatusBadRequest, "the passkey request expired or was already used; start again")
	errWrongUser  = fail(http.StatusBadRequest, "this passkey request was started for another user or ceremony; start again")
	errMalformed  = fail(http.StatusBadRequest, "the passkey response is malformed")
	errNotVerfied = fail(http.StatusBadRequest, "the passkey could not be verified")
	errClone      = fail(http.StatusForbidden, "this passkey was refused: its signature counter went backwards, which suggests a cloned authenticator; contact your security officer")
	errNoPasskey  = fail(http.StatusBadRequest, "no passkey is registered for this account")
	errTooLarge   = fail(http.StatusRequestEntityTooLarge, "the request body is too large")
	errBusy       = fail(http.StatusServiceUnavailable, "too many sign-ins in progress; try again shortly")
)

// guard applies the same-origin checks, then runs h and writes its error.
func (s *Service) guard(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		err := s.sameOrigin(r)
		if err == nil {
			err = h(w, r)
		}
		if err == nil {
			return
		}
		var he *httpError
		if !errors.As(err, &he) {
			s.c.Log.Error("passkey", "route", r.URL.Path, "err", err)
			he = &httpError{http.StatusInternalServerError, "internal error"}
		}
		writeJSON(w, he.status, map[string]string{"error": he.msg})
	})
}

// sameOrigin refuses requests a page of another origin could have made.
func (s *Service) sameOrigin(r *http.Request) error {
	if r.Header.Get(CSRFHeader) != "1" {
		return fail(http.StatusForbidden, "missing "+CSRFHeader+" header")
	}
	if !s.origins[r.Header.Get("Origin")] {
		return fail(http.StatusForbidden, "cross-origin request refused")
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return fail(http.StatusForbidden, "cross-origin request refused")
	}
	return nil
}

func (s *Service) registerBegin(w http.ResponseWriter, r *http.Request) error {
	id, err := s.registrant(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
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
	return s.begin(w, pending{kind: kindRegister, user: id, session: *sess}, creation)
}

// registrant returns the signed-in user of r who may add a passkey: any
// signed-in user, but one who already has a second factor must have
// proved it in this session (a stolen password alone adds no passkey).
func (s *Service) registrant(r *http.Request) (string, error) {
	p, ok := s.c.Sessions.Principal(r)
	if !ok {
		return "", errSignIn
	}
	if !p.MFA {
		m, err := s.c.Directory.MFA(r.Context(), p.UserID)
		if err != nil {
			return "", err
		}
		if len(m.TOTPSecret) > 0 || len(m.Passkeys) > 0 {
			return "", fail(http.StatusForbidden, "sign in with your second factor before adding a passkey")
		}
	}
	return p.UserID, nil
}

func (s *Service) registerFinish(w http.ResponseWriter, r *http.Request) error {
	id, err := s.registrant(r)
	if err != nil {
		return err
	}
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
		return errNotVerfied
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
	writeJSON(w, http.StatusCreated, map[string]bool{"ok": true})
	return nil
}

func (s *Service) loginBegin(w http.ResponseWriter, r *http.Request) error {
	if id, ok := s.c.Sessions.Pending(r); ok {
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
		return s.begin(w, pending{kind: kindSecondFactor, user: id, session: *sess}, assertion)
	}
	assertion, sess, err := s.wa.BeginDiscoverableLogin()
	if err != nil {
		return err
	}
	return s.begin(w, pending{kind: kindPasswordless, session: *sess}, assertion)
}

func (s *Service) loginFinish(w http.ResponseWriter, r *http.Request) error {
	p, body, err := s.finish(w, r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		return s.refuse(ctx, r, p.user, "malformed passkey response", errMalformed)
	}
	var (
		u    *user
		cred *webauthn.Credential
	)
	switch p.kind {
	case kindSecondFactor:
		if id, ok := s.c.Sessions.Pending(r); !ok || id != p.user {
			return s.refuse(ctx, r, p.user, "passkey challenge used by another login", errWrongUser)
		}
		if u, err = s.load(ctx, p.user); err == nil {
			cred, err = s.wa.ValidateLogin(u, p.session, parsed)
		}
	case kindPasswordless:
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
	default:
		return errWrongUser
	}
	if err != nil {
		s.c.Log.Info("passkey login refused", "err", err)
		return s.refuse(ctx, r, p.user, "passkey not verified", errNotVerfied)
	}
	if cred.Authenticator.CloneWarning {
		return s.refuse(ctx, r, u.id, "passkey refused: signature counter did not increase (possible cloned authenticator)", errClone)
	}
	if err := s.saveCounter(ctx, u, cred); err != nil {
		if errors.Is(err, errClone) {
			return s.refuse(ctx, r, u.id, "passkey refused: signature counter did not increase (possible cloned authenticator)", errClone)
		}
		return err
	}
	switch err := s.c.Sessions.Complete(w, r, u.id, Method); {
	case errors.Is(err, session.ErrMismatch):
		return s.refuse(ctx, r, u.id, "passkey of another user than the pending login", errWrongUser)
	case errors.Is(err, session.ErrAudit):
		return fail(http.StatusServiceUnavailable, "the audit log is unavailable; try again later")
	case errors.Is(err, session.ErrFull):
		return errBusy
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": s.c.Redirect})
	return nil
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
		return errNotVerfied // removed meanwhile
	})
}

// refuse audits a failed login and returns clientErr (or the audit error:
// a failure that cannot be recorded is a 503, never silent).
func (s *Service) refuse(ctx context.Context, r *http.Request, id, why string, clientErr error) error {
	if err := s.record(ctx, r, &audit.Event{Interaction: "login-failed", Action: "E", Outcome: audit.MinorFailure, OutcomeDesc: why, UserID: id, AuthMethod: "passkey"}); err != nil {
		return err
	}
	return clientErr
}

func (s *Service) record(ctx context.Context, r *http.Request, e *audit.Event) error {
	e.Time = s.c.Now()
	e.SourceIP = r.RemoteAddr
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		e.SourceIP = host
	}
	e.UserAgent = r.UserAgent()
	if err := s.c.Audit.Record(context.WithoutCancel(ctx), e); err != nil {
		s.c.Log.Error("passkey: audit", "err", err)
		return fail(http.StatusServiceUnavailable, "the audit log is unavailable; try again later")
	}
	return nil
}

// begin stores p, sets the cookie that finds it and answers options.
func (s *Service) begin(w http.ResponseWriter, p pending, options any) error {
	id, err := s.challenges.put(p)
	if errors.Is(err, errTooManyPending) {
		return errBusy
	} else if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: id, Path: "/passkey/", MaxAge: int(s.c.ChallengeTTL.Seconds()),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, options)
	return nil
}

// finish takes the caller's ceremony (once: the cookie is cleared and the
// challenge forgotten whatever happens next) and reads the JSON body.
func (s *Service) finish(w http.ResponseWriter, r *http.Request) (pending, []byte, error) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return pending{}, nil, errChallenge
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Path: "/passkey/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	p, err := s.challenges.take(c.Value)
	if err != nil {
		return pending{}, nil, errChallenge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return pending{}, nil, errTooLarge
	} else if err != nil {
		return pending{}, nil, errMalformed
	}
	if !json.Valid(body) {
		return pending{}, nil, errMalformed
	}
	return p, body, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
