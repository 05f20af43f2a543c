package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/authn/account"
)

// reviewRow is one account of the access review as JSON; the CSV form is
// account.ReviewCSV.
type reviewRow struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	Roles           []string  `json:"roles"`
	Created         time.Time `json:"created"`
	LastLogin       time.Time `json:"lastLogin,omitzero"`
	MFA             []string  `json:"mfa"`
	Dormant         bool      `json:"dormant"`
	Privileged      bool      `json:"privileged"`
	BreakGlassUses  int       `json:"breakGlassUses"`
	Training        string    `json:"training"`
	TrainingExpires time.Time `json:"trainingExpires,omitzero"`
	Disabled        bool      `json:"disabled"`
	Locked          bool      `json:"locked"`
	Reviewed        time.Time `json:"reviewed,omitzero"`
	ReviewedBy      string    `json:"reviewedBy,omitempty"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// review answers GET /admin/v1/access-review: JSON {"rows": [...]}, or CSV
// when asked by ?format=csv or Accept: text/csv.
func (a *api) review(c *call) error {
	asCSV, err := wantCSV(c.r)
	if err != nil {
		return err
	}
	rows, err := a.c.Accounts.Review(c.r.Context())
	if err != nil {
		return err
	}
	if asCSV {
		var buf bytes.Buffer
		if err := account.ReviewCSV(&buf, rows); err != nil {
			return err
		}
		if err := a.recordRead(c); err != nil {
			return err
		}
		c.w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		c.w.Header().Set("Content-Disposition", `attachment; filename="access-review.csv"`)
		c.w.Header().Set("Cache-Control", "no-store")
		c.w.WriteHeader(http.StatusOK)
		c.w.Write(buf.Bytes())
		return nil
	}
	out := make([]reviewRow, len(rows))
	for i, r := range rows {
		out[i] = reviewRow{ID: r.ID, Name: r.Name, Roles: nonNil(r.Roles), Created: r.Created, LastLogin: r.LastLogin,
			MFA: nonNil(r.MFA), Dormant: r.Dormant, Privileged: r.Privileged, BreakGlassUses: r.BreakGlassUses,
			Training: r.Training, TrainingExpires: r.TrainingExpires, Disabled: r.Disabled, Locked: r.Locked,
			Reviewed: r.Reviewed, ReviewedBy: r.ReviewedBy}
	}
	if err := a.recordRead(c); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"rows": out})
	return nil
}

// wantCSV reads the format asked for: ?format=json|csv wins over Accept.
func wantCSV(r *http.Request) (bool, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, errorf(http.StatusBadRequest, "invalid", "format is json or csv")
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/csv" {
			return true, nil
		}
	}
	return false, nil
}

// recertify answers POST /admin/v1/access-review/{id} {"keep": [...]}:
// the roles kept stay, every other is revoked, and if any was the user's
// sessions and tokens end.
func (a *api) recertify(c *call) error {
	if err := notSelf(c); err != nil {
		return err
	}
	b, err := readBody(c.r)
	if err != nil {
		return err
	}
	keep, err := parseKeep(b)
	if err != nil {
		return err
	}
	if err := a.c.Accounts.Recertify(c.r.Context(), c.target, keep, c.by()); err != nil {
		return err
	}
	return a.answerAccount(c, http.StatusOK)
}

// list answers GET /admin/v1/users: {"users": [...]}.
func (a *api) list(c *call) error {
	accts, err := a.c.Accounts.List(c.r.Context())
	if err != nil {
		return err
	}
	for i := range accts {
		accts[i].Roles = nonNil(accts[i].Roles)
	}
	if err := a.recordRead(c); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"users": accts})
	return nil
}

// show answers GET /admin/v1/users/{id}.
func (a *api) show(c *call) error {
	acct, err := a.c.Accounts.Get(c.r.Context(), c.target)
	if err != nil {
		return err
	}
	if err := a.recordRead(c); err != nil {
		return err
	}
	acct.Roles = nonNil(acct.Roles)
	writeJSON(c.w, http.StatusOK, acct)
	return nil
}

// create answers POST /admin/v1/users: 201 with the new account.
func (a *api) create(c *call) error {
	b, err := readBody(c.r)
	if err != nil {
		return err
	}
	req, err := parseCreate(b)
	if err != nil {
		return err
	}
	c.target = req.ID
	c.ev.Entities = nil
	if account.ValidID(req.ID) == nil {
		c.ev.Entities = []string{"urn:phivault:user:" + req.ID}
	}
	acct := account.Account{ID: req.ID, Name: req.Name, Roles: req.Roles, Practitioner: req.Practitioner,
		Patient: req.Patient, Department: req.Department}
	if err := a.c.Accounts.Create(c.r.Context(), acct, req.Password, c.by()); err != nil {
		return err
	}
	c.w.Header().Set("Location", Prefix+"users/"+req.ID)
	return a.answerAccount(c, http.StatusCreated)
}

// disable answers POST .../disable {"reason": "..."} (required): the user
// cannot sign in, and every session and token they hold ends at once.
func (a *api) disable(c *call) error {
	return a.withReason(c, true, a.c.Accounts.Disable)
}

// enable answers POST .../enable [{"reason": "..."}].
func (a *api) enable(c *call) error {
	if err := notSelf(c); err != nil {
		return err
	}
	return a.withReason(c, false, a.c.Accounts.Enable)
}

func (a *api) withReason(c *call, required bool, fn func(ctx context.Context, id, by, reason string) error) error {
	b, err := readBody(c.r)
	if err != nil {
		return err
	}
	reason, err := parseReason(b, required)
	if err != nil {
		return err
	}
	if err := fn(c.r.Context(), c.target, c.by(), reason); err != nil {
		return err
	}
	return a.answerAccount(c, http.StatusOK)
}

// unlock answers POST .../unlock: the lockout after failed logins is lifted.
func (a *api) unlock(c *call) error {
	if err := notSelf(c); err != nil {
		return err
	}
	return a.noBody(c, a.c.Accounts.Unlock)
}

// revoke answers POST .../revoke: every session and token of the user ends.
func (a *api) revoke(c *call) error { return a.noBody(c, a.c.Accounts.Revoke) }

func (a *api) noBody(c *call, fn func(ctx context.Context, id, by string) error) error {
	b, err := readBody(c.r)
	if err != nil {
		return err
	}
	if err := decode(b, &struct{}{}, true); err != nil {
		return err
	}
	if err := fn(c.r.Context(), c.target, c.by()); err != nil {
		return err
	}
	return a.answerAccount(c, http.StatusOK)
}

// roles answers PUT .../roles {"roles": [...]}: the roles are replaced
// (an empty list takes every role away and ends the user's sessions).
func (a *api) roles(c *call) error {
	if err := notSelf(c); err != nil {
		return err
	}
	b, err := readBody(c.r)
	if err != nil {
		return err
	}
	roles, err := parseRoles(b)
	if err != nil {
		return err
	}
	if err := a.c.Accounts.SetRoles(c.r.Context(), c.target, roles, c.by()); err != nil {
		return err
	}
	return a.answerAccount(c, http.StatusOK)
}

// training answers POST .../training {"course", "completed", "expires"}:
// a completed course is recorded (the training gate and the review use it).
func (a *api) training(c *call) error {
	if err := notSelf(c); err != nil {
		return err
	}
	b, err := readBody(c.r)
	if err != nil {
		return err
	}
	t, err := parseTraining(b)
	if err != nil {
		return err
	}
	if err := a.c.Accounts.RecordTraining(c.r.Context(), c.target, t, c.by()); err != nil {
		return err
	}
	return a.answerAccount(c, http.StatusCreated)
}

// answerAccount answers with the target account as it now is. The change
// was audited by the directory.
func (a *api) answerAccount(c *call, status int) error {
	acct, err := a.c.Accounts.Get(c.r.Context(), c.target)
	if err != nil {
		return err
	}
	acct.Roles = nonNil(acct.Roles)
	writeJSON(c.w, status, acct)
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception","diagnostics":"internal error"}]}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// notSelf refuses a grant to the caller's own account: nobody keeps,
// widens, re-enables or unlocks their own access, or records their own
// training (separation of duties). Disabling or revoking oneself is
// allowed: it only takes access away.
func notSelf(c *call) error {
	if c.target != "" && c.target == c.who.UserID {
		return errorf(http.StatusForbidden, "forbidden", "you cannot change your own roles, training, lock or review; ask another administrator")
	}
	return nil
}
