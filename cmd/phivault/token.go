package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/server"
)

func runToken(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("token", "--data DIR --role ROLE [--user ID] [--ttl 1h]", stderr)
	role := fs.String("role", "", "role the token carries: operator (the local operator path: everything), or a role the --user account holds")
	user := fs.String("user", "", "user id the token names: any name for --role operator (default: operator), else an account")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token (at most 720h)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needData(*data, "token"); err != nil {
		return err
	}
	if *role == "" {
		return fail(exitUsage, "--role is required", "e.g. phivault token --data DIR --role operator, or --user alice --role physician")
	}
	if *user == "" {
		if *role != authn.OperatorRole {
			return fail(exitUsage, "a token for role "+*role+" names the account it acts as", "add --user ID (an account holding that role), or use --role operator")
		}
		*user = "operator"
	}
	q := url.Values{"role": {*role}, "user": {*user}, "ttl": {ttl.String()}}
	// A running server mints through its admin socket; otherwise open the
	// directory ourselves. Both paths audit the minting.
	c := server.AdminClient(filepath.Join(*data, server.SocketName))
	resp, err := c.Post("http://phivault/admin/token?"+q.Encode(), "", nil)
	if err == nil {
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fail(exitFail, "the server refused: "+strings.TrimSpace(string(b)), "check --role and --ttl")
		}
		var out struct{ Token string }
		if err := json.Unmarshal(b, &out); err != nil {
			return err
		}
		fmt.Fprintln(stdout, out.Token)
		return nil
	}
	n, err := openNode(context.Background(), *data, slog.New(slog.DiscardHandler), stderr)
	if errors.Is(err, errLocked) {
		return errSocketSilent()
	}
	if err != nil {
		return err
	}
	defer n.close()
	dir, err := account.Open(context.Background(), n.db, n.barrier, account.DefaultOptions(n.audit))
	if err != nil {
		return err
	}
	tok, err := n.mintAudited(context.Background(), dir, *user, *role, *ttl, "operator:cli")
	if err != nil {
		return fail(exitUsage, err.Error(), "")
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// mintAudited mints a token and records who minted it for whom. A token
// for any role but operator acts as the account user, which must hold
// the role; it records the account's revocation epoch.
func (n *node) mintAudited(ctx context.Context, dir *account.Directory, user, role string, ttl time.Duration, by string) (string, error) {
	epoch := 0
	if role != authn.OperatorRole {
		a, err := dir.Get(ctx, user)
		if errors.Is(err, account.ErrNotFound) {
			return "", fmt.Errorf("no account %q: a token for role %s acts as an account (create it with 'phivault user add')", user, role)
		} else if err != nil {
			return "", err
		}
		if a.Disabled || !slices.Contains(a.Roles, role) {
			return "", fmt.Errorf("account %q is disabled or does not hold role %s", user, role)
		}
		epoch = a.Epoch
	}
	tok, _, err := n.tokens.MintAccount(user, []string{role}, epoch, ttl)
	if err != nil {
		return "", err
	}
	ev := &audit.Event{Time: time.Now(), Interaction: "token-issue", Action: "E", Outcome: audit.Success, UserID: by,
		Roles: []string{authn.OperatorRole}, Allowed: true, Policies: []string{"operator-path"}, Entities: []string{"urn:phivault:user:" + user}}
	if err := n.audit.Record(ctx, ev); err != nil {
		return "", err
	}
	return tok.Reveal(), nil
}

// adminTokenHandler serves POST /admin/token on the admin socket.
func (n *node) adminTokenHandler(dir *account.Directory) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { n.serveToken(dir, w, r) }
}

func (n *node) serveToken(dir *account.Directory, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ttl, err := time.ParseDuration(q.Get("ttl"))
	if err != nil {
		http.Error(w, "bad ttl", http.StatusBadRequest)
		return
	}
	tok, err := n.mintAudited(r.Context(), dir, q.Get("user"), q.Get("role"), ttl, operatorOf(r))
	switch {
	case errors.Is(err, audit.ErrUnavailable):
		http.Error(w, "the audit log is unavailable; no token was issued", http.StatusServiceUnavailable)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"token": tok})
}
