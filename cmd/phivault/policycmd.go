package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
	"github.com/phivault/phivault/internal/store/postgres"
)

const policyUsage = "policy show --data DIR | policy check FILE | policy set --data DIR FILE | policy reset --data DIR"

// runPolicy shows, checks or replaces the Cedar policy set. The set is
// kept in the store, so every node sharing the store enforces the same
// one (a change made on one node of a cluster is in force on the others
// within seconds: see watchChanges). A replacement is validated first (a
// set that does not parse or validate changes nothing), audited, written
// to the store and taken into use by a running server at once through its
// admin socket.
func runPolicy(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fail(exitUsage, "policy needs a subcommand: show, check, set or reset", "phivault "+policyUsage)
	}
	sub, rest := args[0], args[1:]
	if sub == "check" {
		if len(rest) != 1 {
			return fail(exitUsage, "policy check takes one file", "phivault policy check FILE")
		}
		src, err := os.ReadFile(rest[0])
		if err != nil {
			return fail(exitUsage, "cannot read "+rest[0]+": "+err.Error(), "")
		}
		if err := policy.Validate(src); err != nil {
			return fail(exitFail, "the policy set is not valid: "+oneLine(err), "fix it; nothing was changed")
		}
		fmt.Fprintln(stdout, "the policy set is valid")
		return nil
	}
	if sub != "show" && sub != "set" && sub != "reset" {
		return fail(exitUsage, "unknown policy subcommand "+sub, "phivault "+policyUsage)
	}
	fs, data := newFlags("policy "+sub, "--data DIR", stderr)
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if err := needData(*data, "policy "+sub); err != nil {
		return err
	}
	switch sub {
	case "show":
		if fs.NArg() != 0 {
			return fail(exitUsage, "policy show takes no file", "phivault policy show --data DIR")
		}
		return showPolicy(*data, stdout, stderr)
	case "reset":
		if fs.NArg() != 0 {
			return fail(exitUsage, "policy reset takes no file", "phivault policy reset --data DIR")
		}
		return setPolicy(*data, policy.DefaultPolicies(), stdout, stderr)
	}
	if fs.NArg() != 1 {
		return fail(exitUsage, "policy set takes one file", "phivault policy set --data DIR FILE")
	}
	src, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fail(exitUsage, "cannot read "+fs.Arg(0)+": "+err.Error(), "")
	}
	return setPolicy(*data, src, stdout, stderr)
}

// setPolicy installs src as the data directory's policy set: through a
// running server's admin socket, else on the directory itself.
func setPolicy(data string, src []byte, stdout, stderr io.Writer) error {
	if err := policy.Validate(src); err != nil {
		return fail(exitFail, "the policy set is not valid: "+oneLine(err), "fix it; nothing was changed")
	}
	c := server.AdminClient(filepath.Join(data, server.SocketName))
	if resp, err := c.Post("http://phivault/admin/policy", "text/plain", strings.NewReader(string(src))); err == nil {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return fail(exitFail, "the server refused: "+strings.TrimSpace(string(b)), "nothing was changed")
		}
		fmt.Fprintln(stdout, "the running server uses the new policy set")
		return nil
	}
	n, err := openNodeForPolicy(context.Background(), data, stderr)
	if errors.Is(err, errLocked) {
		return errSocketSilent()
	}
	if err != nil {
		return err
	}
	defer n.close()
	if pg, ok := n.db.(*postgres.Backend); ok {
		pg.NotifyChanges(policyMeta) // the serving nodes of the cluster take it up now
	}
	if err := n.installPolicy(context.Background(), src, "operator:uid-"+strconv.Itoa(os.Getuid())); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "policy set installed; it takes effect when the server starts (and on the serving nodes of its cluster within seconds)")
	return nil
}

// showPolicy prints the set in force: a running server's (through its
// admin socket), else the one the directory's node opens with (the
// store's; see policySource).
func showPolicy(data string, stdout, stderr io.Writer) error {
	c := server.AdminClient(filepath.Join(data, server.SocketName))
	if resp, err := c.Get("http://phivault/admin/policy"); err == nil {
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			_, err = io.Copy(stdout, resp.Body)
			return err
		}
		if resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusNotFound {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return fail(exitFail, "the server refused: "+strings.TrimSpace(string(b)), "")
		}
	}
	n, err := openNode(context.Background(), data, slog.New(slog.DiscardHandler), stderr)
	if errors.Is(err, errLocked) {
		return fail(exitFail, "a server holds the data directory and does not show its policy set", "stop the server first (a server whose admin socket serves GET /admin/policy answers it directly)")
	}
	if err != nil {
		return err
	}
	defer n.close()
	_, err = stdout.Write(n.policy.Source())
	return err
}

// installPolicy validates src, records the change in the audit log, writes
// it to the store (sealed; see policyMeta) and swaps it into the node's
// engine. The audit record comes first: a change that cannot be audited is
// not made. The other nodes of a cluster take it up from the store (see
// watchChanges). A data directory's policy.cedar from before sets were
// kept in the store is left in place and ignored from then on.
func (n *node) installPolicy(ctx context.Context, src []byte, by string) error {
	if err := policy.Validate(src); err != nil {
		return fail(exitFail, "the policy set is not valid: "+oneLine(err), "fix it; nothing was changed")
	}
	ev := &audit.Event{Time: time.Now(), Interaction: "policy-update", Action: "U", Outcome: audit.Success, UserID: by,
		Roles: []string{authn.OperatorRole}, Allowed: true, Policies: []string{"operator-path"},
		Query: fmt.Sprintf("%x", n.barrier.Token("policy-set", string(src)))}
	if err := n.audit.Record(ctx, ev); err != nil {
		return err
	}
	sum, err := n.savePolicy(ctx, src)
	if err != nil {
		return err
	}
	if n.policy == nil { // opened to replace a set that does not load
		return nil
	}
	if err := n.policy.Replace(src); err != nil {
		return err
	}
	n.registerPolicySync(sum)
	return nil
}

// adminPolicyShowHandler serves GET /admin/policy on the admin socket: the
// Cedar source of the set in force.
func (n *node) adminPolicyShowHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(n.policy.Source())
}

// adminPolicyHandler serves POST /admin/policy on the admin socket.
func (n *node) adminPolicyHandler(w http.ResponseWriter, r *http.Request) {
	src, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	if err != nil {
		http.Error(w, "the policy set is too large", http.StatusRequestEntityTooLarge)
		return
	}
	err = n.installPolicy(r.Context(), src, operatorOf(r))
	var ce *cliError
	switch {
	case err == nil:
		w.Write([]byte("ok\n"))
	case errors.As(err, &ce):
		http.Error(w, ce.msg, http.StatusBadRequest)
	case errors.Is(err, audit.ErrUnavailable):
		http.Error(w, "the audit log is unavailable; nothing was changed", http.StatusServiceUnavailable)
	default:
		n.log.Error("policy update failed", "err", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

// oneLine keeps the first line of an error, for a one-line message.
func oneLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
