package account

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/store"
)

// More errors callers match with errors.Is; the wrapped text says what is
// wrong in words an operator can act on.
var (
	ErrInvalid    = errors.New("account: invalid input")
	ErrSeparation = errors.New("account: administrators are separate identities: an administrator account may not also hold a role that reaches patient data")
)

// PatientDataRoles are the roles through which an account can reach
// patient data; an administrator may hold none of them.
var PatientDataRoles = []string{"physician", "nurse", "front-desk", "billing", "researcher", "patient"}

// PrivilegedRoles are the roles the access review flags as privileged.
var PrivilegedRoles = []string{"administrator", "security-officer", "privacy-officer", "auditor"}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$`)

// ValidID reports whether id may name an account: 1 to 128 characters of
// letters, digits and . _ @ + -, starting with a letter or digit.
func ValidID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w: a user id is 1 to 128 letters, digits or . _ @ + - and starts with a letter or digit", ErrInvalid)
	}
	return nil
}

// checkRoles validates a role list: at least one, each known, no
// duplicates, and the administrator separation.
func checkRoles(roles []string) error {
	if len(roles) == 0 {
		return fmt.Errorf("%w: an account needs at least one role", ErrInvalid)
	}
	for i, r := range roles {
		if !slices.Contains(Roles, r) {
			return fmt.Errorf("%w: unknown role %q (known: %s)", ErrInvalid, r, strings.Join(Roles, ", "))
		}
		if slices.Contains(roles[:i], r) {
			return fmt.Errorf("%w: role %q is listed twice", ErrInvalid, r)
		}
	}
	if slices.Contains(roles, "administrator") {
		for _, r := range roles {
			if slices.Contains(PatientDataRoles, r) {
				return fmt.Errorf("%w (drop %q or create a separate account)", ErrSeparation, r)
			}
		}
	}
	return nil
}

func checkText(what, s string, max int) error {
	if len(s) > max || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%w: %s must be at most %d bytes of printable text", ErrInvalid, what, max)
	}
	return nil
}

func userEntity(id string) []string { return []string{"urn:phivault:user:" + id} }

// Create stores a new account with password pw (ErrExists if the id is
// taken, ErrWeakPassword, ErrInvalid, ErrSeparation). by names who did it,
// for the audit log. Epoch, Disabled, LastLogin and Training of a start
// fresh; Created is now.
func (d *Directory) Create(ctx context.Context, a Account, pw Password, by string) error {
	if err := CheckPassword(a.ID, pw); err != nil {
		return err
	}
	return d.create(ctx, a, pw, by)
}

// CreateExternal creates an account that signs in only through an
// external identity provider (single sign-on): it has no password, so a
// password login for it always fails.
func (d *Directory) CreateExternal(ctx context.Context, a Account, by string) error {
	return d.create(ctx, a, "", by)
}

func (d *Directory) create(ctx context.Context, a Account, pw Password, by string) error {
	if err := ValidID(a.ID); err != nil {
		return err
	}
	if err := checkRoles(a.Roles); err != nil {
		return err
	}
	for _, f := range [][2]string{{"the name", a.Name}, {"the practitioner id", a.Practitioner}, {"the patient id", a.Patient}, {"the department", a.Department}} {
		if err := checkText(f[0], f[1], 256); err != nil {
			return err
		}
	}
	a.Roles = slices.Clone(a.Roles)
	a.Created, a.LastLogin, a.Epoch, a.Disabled, a.Training, a.MFAEnrolled = d.now().UTC(), time.Time{}, 1, false, nil, nil
	a.LockedUntil, a.Reviewed, a.ReviewedBy = time.Time{}, time.Time{}, ""
	rec := record{Account: a}
	if pw != "" {
		rec.Hash = d.hashPassword(pw, d.opts.argon)
	}
	key := d.accountKey(a.ID)
	sealed, err := d.seal(ctx, key, &rec)
	if err != nil {
		return err
	}
	err = d.st.Update(ctx, func(tx store.Writer) error { return tx.CreateMeta(key, sealed) })
	if errors.Is(err, store.ErrExists) {
		return fmt.Errorf("%w: %s", ErrExists, a.ID)
	}
	if err != nil {
		return err
	}
	d.invalidate(a.ID)
	return d.audit(ctx, audit.Event{Interaction: "user-create", Action: "C", UserID: by, Entities: userEntity(a.ID),
		OutcomeDesc: "roles " + strings.Join(a.Roles, ",")})
}

// change applies fn to account id and audits the change as interaction
// by by.
func (d *Directory) change(ctx context.Context, id, by, interaction, desc string, fn func(*record) error) error {
	if _, err := d.update(ctx, id, fn); err != nil {
		return err
	}
	return d.audit(ctx, audit.Event{Interaction: interaction, Action: "U", UserID: by, Entities: userEntity(id), OutcomeDesc: desc})
}

// SetPassword replaces id's password (ErrWeakPassword, ErrNotFound). It
// does not end sessions; call Revoke for that.
func (d *Directory) SetPassword(ctx context.Context, id string, pw Password, by string) error {
	if err := CheckPassword(id, pw); err != nil {
		return err
	}
	h := d.hashPassword(pw, d.opts.argon)
	return d.change(ctx, id, by, "password-change", "", func(r *record) error { r.Hash = h; return nil })
}

// Disable stops id from logging in and, by moving its epoch on, ends every
// session and token it holds at once.
func (d *Directory) Disable(ctx context.Context, id, by, reason string) error {
	if err := checkText("the reason", reason, 512); err != nil {
		return err
	}
	return d.change(ctx, id, by, "user-disable", reason, func(r *record) error {
		r.Account.Disabled = true
		r.Account.Epoch++
		return nil
	})
}

// Enable lets id log in again; sessions ended by Disable stay ended.
func (d *Directory) Enable(ctx context.Context, id, by, reason string) error {
	if err := checkText("the reason", reason, 512); err != nil {
		return err
	}
	return d.change(ctx, id, by, "user-enable", reason, func(r *record) error { r.Account.Disabled = false; return nil })
}

// Revoke ends every session and token of id (moves its epoch on).
func (d *Directory) Revoke(ctx context.Context, id, by string) error {
	return d.change(ctx, id, by, "user-revoke", "", func(r *record) error { r.Account.Epoch++; return nil })
}

// Unlock lifts a lockout of id (the stored lock and the in-memory
// throttle of this node).
func (d *Directory) Unlock(ctx context.Context, id, by string) error {
	err := d.change(ctx, id, by, "user-unlock", "", func(r *record) error { r.Account.LockedUntil = time.Time{}; return nil })
	if err == nil {
		d.thr.reset(id)
	}
	return err
}

// SetRoles replaces id's roles (ErrInvalid, ErrSeparation). Valid serves
// the new roles at once.
//
// An empty list takes every role away (an identity provider that stopped
// granting any): the account then reaches nothing, and its sessions and
// tokens end at once.
func (d *Directory) SetRoles(ctx context.Context, id string, roles []string, by string) error {
	if len(roles) > 0 {
		if err := checkRoles(roles); err != nil {
			return err
		}
	}
	roles = slices.Clone(roles)
	return d.change(ctx, id, by, "user-update", "roles "+strings.Join(roles, ","), func(r *record) error {
		r.Account.Roles = roles
		if len(roles) == 0 {
			r.Account.Epoch++
		}
		return nil
	})
}

// Recertify records an access review of id: the roles in keep (each one
// id holds) stay, every other is revoked and, if any was, id's sessions
// and tokens end. It records who decided and when.
func (d *Directory) Recertify(ctx context.Context, id string, keep []string, by string) error {
	if by == "" {
		return fmt.Errorf("%w: a recertification names its reviewer", ErrInvalid)
	}
	var revoked, kept []string
	_, err := d.update(ctx, id, func(r *record) error {
		for _, k := range keep {
			if !slices.Contains(r.Account.Roles, k) {
				return fmt.Errorf("%w: %s does not hold role %q; a review can only keep or revoke", ErrInvalid, id, k)
			}
		}
		revoked, kept = nil, nil
		for _, role := range r.Account.Roles {
			if slices.Contains(keep, role) {
				kept = append(kept, role)
			} else {
				revoked = append(revoked, role)
			}
		}
		r.Account.Roles = kept
		if len(revoked) > 0 {
			r.Account.Epoch++
		}
		r.Account.Reviewed, r.Account.ReviewedBy = d.now().UTC(), by
		return nil
	})
	if err != nil {
		return err
	}
	return d.audit(ctx, audit.Event{Interaction: "user-recertify", Action: "U", UserID: by, Entities: userEntity(id),
		OutcomeDesc: "kept " + strings.Join(kept, ",") + "; revoked " + strings.Join(revoked, ",")})
}

// RecordTraining adds a completed course to id's training records.
func (d *Directory) RecordTraining(ctx context.Context, id string, t Training, by string) error {
	if err := checkText("the course", t.Course, 64); err != nil || t.Course == "" {
		return fmt.Errorf("%w: a training record names its course (e.g. hipaa)", ErrInvalid)
	}
	if t.Completed.IsZero() || !t.Expires.After(t.Completed) {
		return fmt.Errorf("%w: a training record needs a completion date and a later expiry date", ErrInvalid)
	}
	if t.Completed.After(d.now().Add(24 * time.Hour)) {
		return fmt.Errorf("%w: the completion date is in the future", ErrInvalid)
	}
	t.Recorded = by
	return d.change(ctx, id, by, "training-record", "course "+t.Course+" expires "+t.Expires.UTC().Format(time.DateOnly), func(r *record) error {
		r.Account.Training = append(r.Account.Training, t)
		return nil
	})
}
