package authn

import (
	"context"
	"slices"
	"strings"

	"github.com/phivault/phivault/internal/policy"
)

// OperatorRole is the role of the local operator path: tokens minted from
// the data directory with its key (`phivault token --role operator`, the
// bootstrap token of init and demo), the admin socket and the CLI. The
// policy set lets it do everything on that path only; it names no account.
const OperatorRole = "operator"

// Resolver returns an account's current principal if its sessions and
// tokens issued under epoch still stand (account.Directory.Valid).
type Resolver interface {
	Valid(ctx context.Context, id string, epoch int) (policy.Principal, error)
}

// Checker checks one kind of bearer token (the SMART access tokens).
type Checker interface {
	Check(token string) (policy.Principal, error)
}

// Bearer authenticates the FHIR API's bearer tokens: operator tokens
// (pv1.) and, when SMART is set, SMART access tokens. An operator token
// for a named user acts as that user's account at the moment of the
// request, within the token's roles: if the account is gone, disabled,
// revoked since minting, or no longer holds a role of the token, the
// token is refused. Every failure is ErrInvalidToken.
type Bearer struct {
	Operator *Tokens
	Accounts Resolver // nil: only operator-role tokens are accepted
	SMART    Checker  // nil: no SMART tokens
}

// Check implements server.Authenticator.
func (b *Bearer) Check(tok string) (policy.Principal, error) {
	if !strings.HasPrefix(tok, tokenPrefix) {
		if b.SMART == nil {
			return policy.Principal{}, ErrInvalidToken
		}
		return b.SMART.Check(tok)
	}
	p, epoch, err := b.Operator.check(tok)
	if err != nil {
		return policy.Principal{}, err
	}
	if slices.Equal(p.Roles, []string{OperatorRole}) {
		return p, nil
	}
	if b.Accounts == nil || slices.Contains(p.Roles, OperatorRole) {
		return policy.Principal{}, ErrInvalidToken
	}
	acct, err := b.Accounts.Valid(context.Background(), p.UserID, epoch)
	if err != nil {
		return policy.Principal{}, ErrInvalidToken
	}
	for _, r := range p.Roles {
		if !slices.Contains(acct.Roles, r) {
			return policy.Principal{}, ErrInvalidToken
		}
	}
	acct.Roles, acct.Method, acct.SessionID = p.Roles, p.Method, p.SessionID
	return acct, nil
}
