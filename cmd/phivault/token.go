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
	"strings"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/server"
)

func runToken(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("token", "--data DIR --role ROLE [--user ID] [--ttl 1h]", stderr)
	role := fs.String("role", "", "role the token carries (e.g. administrator)")
	user := fs.String("user", "", "user id the token names (default: operator)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token (at most 720h)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needData(*data, "token"); err != nil {
		return err
	}
	if *role == "" {
		return fail(exitUsage, "--role is required", "e.g. phivault token --data DIR --role administrator")
	}
	if *user == "" {
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
		return fail(exitFail, "a server holds the data directory but its admin socket does not answer", "is the server starting or stuck? try again")
	}
	if err != nil {
		return err
	}
	defer n.close()
	tok, err := n.mintAudited(context.Background(), *user, *role, *ttl, "operator:cli")
	if err != nil {
		return fail(exitUsage, err.Error(), "")
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// mintAudited mints a token and records who minted it for whom.
func (n *node) mintAudited(ctx context.Context, user, role string, ttl time.Duration, by string) (string, error) {
	tok, _, err := n.tokens.Mint(user, []string{role}, ttl)
	if err != nil {
		return "", err
	}
	ev := &audit.Event{Time: time.Now(), Interaction: "token-issue", Action: "E", Outcome: audit.Success, UserID: by,
		Roles: []string{"administrator"}, Allowed: true, Policies: []string{"operator-path"}, Entities: []string{"urn:phivault:user:" + user}}
	if err := n.audit.Record(ctx, ev); err != nil {
		return "", err
	}
	return tok.Reveal(), nil
}

// adminTokenHandler serves POST /admin/token on the admin socket.
func (n *node) adminTokenHandler(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ttl, err := time.ParseDuration(q.Get("ttl"))
	if err != nil {
		http.Error(w, "bad ttl", http.StatusBadRequest)
		return
	}
	tok, err := n.mintAudited(r.Context(), q.Get("user"), q.Get("role"), ttl, "operator:admin-socket")
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
