package passkey

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/phivault/phivault/internal/audit"
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
		"POST /passkey/stepup/begin":    s.guard(s.stepupBegin),
		"POST /passkey/stepup/finish":   s.guard(s.stepupFinish),
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
	errSignIn      = fail(http.StatusUnauthorized, "sign in first")
	errChallenge   = fail(http.StatusBadRequest, "the passkey request expired or was already used; start again")
	errWrongUser   = fail(http.StatusBadRequest, "this passkey request was started for another user or ceremony; start again")
	errMalformed   = fail(http.StatusBadRequest, "the passkey response is malformed")
	errNotVerified = fail(http.StatusBadRequest, "the passkey could not be verified")
	errClone       = fail(http.StatusForbidden, "this passkey was refused: its signature counter went backwards, which suggests a cloned authenticator; contact your security officer")
	errNoPasskey   = fail(http.StatusBadRequest, "no passkey is registered for this account")
	errTooLarge    = fail(http.StatusRequestEntityTooLarge, "the request body is too large")
	errBusy        = fail(http.StatusServiceUnavailable, "too many sign-ins in progress; try again shortly")
	errAudit       = fail(http.StatusServiceUnavailable, "the audit log is unavailable; try again later")
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

// refuse audits a failed login or step-up and returns clientErr (or the
// audit error: a failure that cannot be recorded is a 503, never silent).
func (s *Service) refuse(ctx context.Context, r *http.Request, interaction, id, why string, clientErr error) error {
	if err := s.record(ctx, r, &audit.Event{Interaction: interaction, Action: "E", Outcome: audit.MinorFailure, OutcomeDesc: why, UserID: id, AuthMethod: "passkey"}); err != nil {
		return err
	}
	return clientErr
}

func (s *Service) record(ctx context.Context, r *http.Request, e *audit.Event) error {
	e.Time = s.c.Now()
	e.SourceIP = sourceOf(r)
	e.UserAgent = r.UserAgent()
	if err := s.c.Audit.Record(context.WithoutCancel(ctx), e); err != nil {
		s.c.Log.Error("passkey: audit", "err", err)
		return errAudit
	}
	return nil
}

// begin stores p, sets the cookie that finds it and answers options.
func (s *Service) begin(w http.ResponseWriter, r *http.Request, p pending, options any) error {
	p.source = sourceOf(r)
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

// sourceOf is the client address of r (the host of RemoteAddr).
func sourceOf(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
