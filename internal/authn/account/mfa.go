package account

import (
	"context"
	"errors"
	"slices"
)

// MFA returns id's second-factor material (zero when none is set up), or
// ErrNotFound when there is no such account.
func (d *Directory) MFA(ctx context.Context, id string) (MFA, error) {
	if _, err := d.Get(ctx, id); err != nil {
		return MFA{}, err
	}
	var m MFA
	if _, err := d.load(ctx, d.mfaKey(id), &m); err != nil && !errors.Is(err, ErrNotFound) {
		return MFA{}, err
	}
	return m, nil
}

// UpdateMFA applies fn to id's MFA record atomically: fn sees the current
// record and its changes are written only if nobody else changed the
// record meanwhile (otherwise fn runs again on the newer one, so fn must
// have no other effects). If fn fails nothing is written. The account's
// MFAEnrolled follows: "totp" while a TOTP secret is set, "passkey" while
// a passkey is registered.
func (d *Directory) UpdateMFA(ctx context.Context, id string, fn func(*MFA) error) error {
	if _, err := d.Get(ctx, id); err != nil {
		return err
	}
	key := d.mfaKey(id)
	var m MFA
	for i := 0; ; i++ {
		m = MFA{}
		old, err := d.load(ctx, key, &m)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err := fn(&m); err != nil {
			return err
		}
		sealed, err := d.seal(ctx, key, &m)
		if err != nil {
			return err
		}
		err = d.put(ctx, key, old, sealed)
		if err == nil {
			break
		}
		if !errors.Is(err, errRace) || i == 10 {
			return err
		}
	}
	var enrolled []string
	if len(m.TOTPSecret) > 0 {
		enrolled = append(enrolled, "totp")
	}
	if len(m.Passkeys) > 0 {
		enrolled = append(enrolled, "passkey")
	}
	_, err := d.update(ctx, id, func(r *record) error {
		if !slices.Equal(r.Account.MFAEnrolled, enrolled) {
			r.Account.MFAEnrolled = enrolled
		}
		return nil
	})
	return err
}
