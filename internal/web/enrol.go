package web

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"html/template"
	"image/png"
	"net/http"

	"github.com/pquerna/otp/totp"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
)

// enrolPage shows a new TOTP secret (key, otpauth:// link and its QR code) for the
// signed-in user, unless one is already set up.
func (h *handler) enrolPage(w http.ResponseWriter, r *http.Request) {
	p, ok := h.principal(w, r)
	if !ok {
		return
	}
	mfa, err := h.o.Accounts.MFA(r.Context(), p.UserID)
	if err != nil {
		h.message(w, r, http.StatusServiceUnavailable, msgDown)
		return
	}
	pg := page{Title: "Authenticator app", User: p.UserID}
	if len(mfa.TOTPSecret) == 0 {
		secret := make([]byte, 20)
		rand.Read(secret)
		if err := h.fillKey(&pg, p.UserID, secret); err != nil {
			h.message(w, r, http.StatusServiceUnavailable, msgDown)
			return
		}
	}
	h.render(w, r, http.StatusOK, "enrol", pg)
}

func (h *handler) fillKey(pg *page, user string, secret []byte) error {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: h.o.Issuer, AccountName: user, Secret: secret})
	if err != nil {
		return err
	}
	pg.Secret, pg.URI = key.Secret(), template.URL(key.URL())
	img, err := key.Image(200, 200)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	// A data: URI, which the page's CSP allows for images (img-src data:).
	pg.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()))
	return nil
}

// enrol stores the secret once the user proves their app has it (a
// first valid code), with fresh recovery codes that are shown once; the
// session then counts as proved with a second factor. The enrolment is
// audited ("mfa-enrol") before anything is stored: if it cannot be,
// nothing changes.
func (h *handler) enrol(w http.ResponseWriter, r *http.Request) {
	if !h.csrf(w, r) {
		return
	}
	p, ok := h.principal(w, r)
	if !ok {
		return
	}
	secret, err := b32.DecodeString(r.PostFormValue("secret"))
	if err != nil || len(secret) != 20 {
		h.message(w, r, http.StatusBadRequest, "The enrolment form is damaged. Reload the page and start again.")
		return
	}
	kind, code := parseCode(r.PostFormValue("code"))
	step, ok := totpStep(secret, code, 0, h.o.Now())
	if kind != totpCode || !ok {
		pg := page{Title: "Authenticator app", User: p.UserID, Error: msgWrongCode}
		if err := h.fillKey(&pg, p.UserID, secret); err != nil {
			h.message(w, r, http.StatusServiceUnavailable, msgDown)
			return
		}
		h.render(w, r, http.StatusBadRequest, "enrol", pg)
		return
	}
	ev := &audit.Event{Time: h.o.Now(), Interaction: "mfa-enrol", Action: "U", Outcome: audit.Success,
		OutcomeDesc: "TOTP authenticator and 10 recovery codes set up", UserID: p.UserID, Roles: p.Roles,
		SourceIP: sourceOf(r), UserAgent: r.UserAgent(), AuthMethod: p.Method, Allowed: true, Policies: []string{"authentication"}}
	if err := h.o.Audit.Record(r.Context(), ev); err != nil {
		h.o.Log.Error("web: audit of TOTP enrolment failed", "err", err)
		h.message(w, r, http.StatusServiceUnavailable, "The audit log is unavailable; nothing was changed.")
		return
	}
	shown, hashes := newRecoveryCodes()
	err = h.o.Accounts.UpdateMFA(r.Context(), p.UserID, func(m *account.MFA) error {
		if len(m.TOTPSecret) > 0 {
			return errEnrolled
		}
		m.TOTPSecret, m.TOTPLastStep, m.Recovery = account.Secret(secret), step, hashes
		return nil
	})
	if errors.Is(err, errEnrolled) {
		h.message(w, r, http.StatusConflict, "An authenticator app is already set up for this account.")
		return
	} else if err != nil {
		h.o.Log.Error("web: TOTP enrolment", "err", err)
		h.message(w, r, http.StatusServiceUnavailable, msgDown)
		return
	}
	if !p.MFA {
		if err := h.o.Sessions.Elevate(w, r, "password+totp"); err != nil {
			h.sessionError(w, r, err)
			return
		}
	}
	h.render(w, r, http.StatusOK, "codes", page{Title: "Recovery codes", User: p.UserID, Codes: shown})
}
