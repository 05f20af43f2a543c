package account

import (
	"context"
	"errors"
	"time"

	"github.com/phivault/phivault/internal/audit"
)

// Login checks id's password, from the network address source. It returns
// the account, or ErrThrottled while the account id or the source must
// wait (no password is checked then), or ErrBadCredentials for every other
// failure: unknown id, wrong password, disabled or locked account. An
// unknown id costs the same Argon2id computation as a known one. Every
// attempt is audited ("login" or "login-failed"), and so is a lockout; if
// the audit log cannot record the attempt, Login fails.
func (d *Directory) Login(ctx context.Context, id string, pw Password, source string) (Account, error) {
	now := d.now()
	// Throttle keys are bounded: an id that cannot exist shares one key,
	// and a source is cut to the length of an IPv6 address with zone.
	key := id
	if ValidID(id) != nil {
		key = "\x00invalid"
	}
	if len(source) > 64 {
		source = source[:64]
	}
	if !d.thr.acquire(key, source, now) {
		// No password is checked; the audit still names an existing target.
		known := false
		if key == id {
			var rec record
			_, err := d.load(ctx, d.accountKey(id), &rec)
			known = err == nil
		}
		return Account{}, d.failed(ctx, id, known, source, "throttled", ErrThrottled)
	}
	defer d.thr.release(key, source)
	var rec record
	var err error
	if key == id {
		_, err = d.load(ctx, d.accountKey(id), &rec)
	} else {
		err = ErrNotFound
	}
	known := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Account{}, err
	}
	hash := rec.Hash
	if !known || hash == "" || len(pw) > MaxPasswordBytes {
		hash = d.dummy
	}
	match := d.verify(pw, hash) && known && rec.Hash != "" && len(pw) <= MaxPasswordBytes
	a := rec.Account
	switch {
	case match && a.Disabled:
		return Account{}, d.failed(ctx, id, known, source, "account disabled", ErrBadCredentials)
	case match && now.Before(a.LockedUntil):
		return Account{}, d.failed(ctx, id, known, source, "account locked", ErrBadCredentials)
	case !match:
		lock, srcBlocked := d.thr.failure(key, source, now)
		why := "wrong password"
		if !known {
			why = "unknown user"
		}
		err := d.failed(ctx, id, known, source, why, ErrBadCredentials)
		if lock && known {
			err = errors.Join(err, d.lock(ctx, id, source, now))
		}
		if srcBlocked {
			err = errors.Join(err, d.audit(ctx, audit.Event{Interaction: "lockout", Action: "E", Outcome: audit.MinorFailure,
				OutcomeDesc: "source blocked after repeated failed logins", SourceIP: source}))
		}
		return Account{}, err
	}
	d.thr.reset(id)
	// Hashes made under older (weaker) parameters are upgraded now that
	// the password is at hand.
	upgrade := ""
	if p, _, _, err := parsePHC(rec.Hash); err == nil && p != d.opts.argon {
		upgrade = d.hashPassword(pw, d.opts.argon)
	}
	a, err = d.update(ctx, id, func(r *record) error {
		// Changed since the check (disabled, locked, new password): refuse.
		if r.Account.Disabled || now.Before(r.Account.LockedUntil) || r.Hash != rec.Hash {
			return ErrBadCredentials
		}
		r.Account.LastLogin = now.UTC()
		if upgrade != "" {
			r.Hash = upgrade
		}
		return nil
	})
	if errors.Is(err, ErrBadCredentials) {
		return Account{}, d.failed(ctx, id, true, source, "account changed during login", err)
	}
	if err != nil {
		return Account{}, err
	}
	if err := d.audit(ctx, audit.Event{Interaction: "login", Action: "E", UserID: id, Roles: a.Roles, SourceIP: source, AuthMethod: "password"}); err != nil {
		return Account{}, err
	}
	return a, nil
}

// failed audits a failed attempt and returns want (or the audit error
// joined to it). Unknown ids are not recorded: people type passwords into
// the user field.
func (d *Directory) failed(ctx context.Context, id string, known bool, source, why string, want error) error {
	e := audit.Event{Interaction: "login-failed", Action: "E", Outcome: audit.MinorFailure, OutcomeDesc: why, SourceIP: source, AuthMethod: "password"}
	if known {
		e.UserID = id
	}
	if err := d.audit(ctx, e); err != nil {
		return errors.Join(want, err)
	}
	return want
}

// lock stores a lock on id (so that a restart or another node keeps it)
// and audits it.
func (d *Directory) lock(ctx context.Context, id, source string, now time.Time) error {
	until := now.Add(d.opts.LockFor).UTC()
	if _, err := d.update(ctx, id, func(r *record) error {
		r.Account.LockedUntil = until
		return nil
	}); err != nil {
		return err
	}
	return d.audit(ctx, audit.Event{Interaction: "lockout", Action: "E", Outcome: audit.MinorFailure, UserID: id, SourceIP: source,
		OutcomeDesc: "account locked until " + until.Format(time.RFC3339) + " after repeated failed logins", Entities: userEntity(id)})
}
