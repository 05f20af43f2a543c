package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/authn/account"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
)

func runAccessReview(args []string, stdout, stderr io.Writer) error {
	return runAccountCmd("access-review", args, stdout, stderr)
}

// decision is one recertification: with isKeep, keep exactly keep;
// otherwise revoke the roles in revoke (nil: all of them).
type decision struct {
	user   string
	keep   []string
	revoke []string
	isKeep bool
}

// parseAccessReview parses `access-review [--csv] [--keep USER=ROLES]...
// [--revoke USER[=ROLES]]...`.
func parseAccessReview(args []string, stderr io.Writer) (*acctCall, error) {
	fs, data := newFlags("access-review", "--data DIR [--csv] [--keep USER=ROLE,ROLE]... [--revoke USER[=ROLE,ROLE]]... [--reviewer NAME]", stderr)
	csvOut := fs.Bool("csv", false, "write the report as CSV")
	reviewer := fs.String("reviewer", "", "who decides (recorded on the account and in the audit log; default: the operator)")
	var ds []decision
	add := func(isKeep bool) func(string) error {
		return func(v string) error {
			user, roles, hasRoles := strings.Cut(v, "=")
			if user == "" || (isKeep && !hasRoles) || (hasRoles && len(splitList(roles)) == 0 && !isKeep) {
				return errors.New("want USER=ROLE,ROLE" + map[bool]string{false: " or USER"}[isKeep])
			}
			if slices.ContainsFunc(ds, func(d decision) bool { return d.user == user }) {
				return fmt.Errorf("%s is decided twice", user)
			}
			d := decision{user: user, isKeep: isKeep}
			if isKeep {
				d.keep = splitList(roles)
			} else if hasRoles {
				d.revoke = splitList(roles)
			}
			ds = append(ds, d)
			return nil
		}
	}
	fs.Func("keep", "keep exactly these roles of USER and revoke the rest (USER=ROLE,ROLE; USER= keeps none)", add(true))
	fs.Func("revoke", "revoke these roles of USER (USER=ROLE,ROLE), or all its roles (USER)", add(false))
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != 0 {
		return nil, fail(exitUsage, "access-review takes no arguments", "decisions are flags: --keep USER=ROLE,ROLE or --revoke USER")
	}
	if *csvOut && len(ds) > 0 {
		return nil, fail(exitUsage, "--csv writes the report; it cannot be combined with decisions", "review first, then decide in a second command")
	}
	read := ""
	if len(ds) == 0 {
		read = "access-review"
	}
	return &acctCall{data: *data, read: read, run: func(ctx context.Context, d *account.Directory, by string, _ account.Password, out io.Writer) error {
		if len(ds) == 0 {
			return writeReview(ctx, d, *csvOut, out)
		}
		if *reviewer != "" {
			by = *reviewer
		}
		return recertify(ctx, d, ds, by, out)
	}}, nil
}

func writeReview(ctx context.Context, d *account.Directory, csvOut bool, out io.Writer) error {
	rows, err := d.Review(ctx)
	if err != nil {
		return err
	}
	if csvOut {
		return account.ReviewCSV(out, rows)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tROLES\tLAST LOGIN\tMFA\tTRAINING\tFLAGS\tBREAK-GLASS")
	for _, r := range rows {
		var flags []string
		for _, f := range []struct {
			on   bool
			name string
		}{{r.Privileged, "privileged"}, {r.Dormant, "dormant"}, {r.Disabled, "disabled"}, {r.Locked, "locked"}, {len(r.MFA) == 0, "no-mfa"}} {
			if f.on {
				flags = append(flags, f.name)
			}
		}
		train := r.Training
		if !r.TrainingExpires.IsZero() {
			train += " " + r.TrainingExpires.Format("2006-01-02")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.ID, orNone(r.Roles), when(r.LastLogin), orNone(r.MFA), train, orNone(flags), r.BreakGlassUses)
	}
	return tw.Flush()
}

// recertify applies the decisions in order and stops at the first that
// fails (the ones before it stay applied; each is audited).
func recertify(ctx context.Context, d *account.Directory, ds []decision, by string, out io.Writer) error {
	for _, dc := range ds {
		a, err := d.Get(ctx, dc.user)
		if err != nil {
			return fmt.Errorf("%s: %w", dc.user, err)
		}
		keep := dc.keep
		if !dc.isKeep {
			for _, r := range dc.revoke {
				if !slices.Contains(a.Roles, r) {
					return fmt.Errorf("%w: %s does not hold role %q", account.ErrInvalid, dc.user, r)
				}
			}
			keep = nil
			if dc.revoke != nil {
				for _, r := range a.Roles {
					if !slices.Contains(dc.revoke, r) {
						keep = append(keep, r)
					}
				}
			}
		}
		if err := d.Recertify(ctx, dc.user, keep, by); err != nil {
			return err
		}
		var revoked []string
		for _, r := range a.Roles {
			if !slices.Contains(keep, r) {
				revoked = append(revoked, r)
			}
		}
		fmt.Fprintf(out, "%s: kept %s; revoked %s\n", dc.user, orNone(keep), orNone(revoked))
	}
	return nil
}

// parseAccount parses one account command line.
func parseAccount(cmd string, args []string, stderr io.Writer) (*acctCall, error) {
	switch cmd {
	case "user":
		return parseUser(args, stderr)
	case "training":
		return parseTraining(args, stderr)
	case "access-review":
		return parseAccessReview(args, stderr)
	}
	return nil, fail(exitUsage, "unknown command "+cmd, "")
}

// acctRequest and acctResponse carry an account command over the admin
// socket of a running server, which runs it with its own Directory (so
// its sessions see a revocation at once).
type acctRequest struct {
	Cmd      string   `json:"cmd"`
	Args     []string `json:"args"`
	Password string   `json:"password,omitempty"`
}

type acctResponse struct {
	Out   string `json:"out"`
	Error string `json:"error,omitempty"`
	Hint  string `json:"hint,omitempty"`
	Code  int    `json:"code"`
}

// runAccountCmd runs user, training and access-review: through a running
// server's admin socket when one answers, else on the data directory.
func runAccountCmd(cmd string, args []string, stdout, stderr io.Writer) error {
	c, err := parseAccount(cmd, args, stderr)
	if err != nil {
		return err
	}
	if err := needData(c.data, cmd); err != nil {
		return err
	}
	var pw account.Password
	if c.needPW {
		if pw, err = readNewPassword(stdin, c.stdinPW, stderr); err != nil {
			return err
		}
	}
	body, _ := json.Marshal(acctRequest{Cmd: cmd, Args: args, Password: string(pw)})
	hc := server.AdminClient(filepath.Join(c.data, server.SocketName))
	if resp, err := hc.Post("http://phivault/admin/accounts", "application/json", strings.NewReader(string(body))); err == nil {
		defer resp.Body.Close()
		var r acctResponse
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return fail(exitFail, "the server refused: "+resp.Status+" "+strings.TrimSpace(string(b)), "is the server sealed? 'phivault unseal' it, or stop it and run the command offline")
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&r); err != nil {
			return fail(exitFail, "the server's answer is not readable: "+err.Error(), "")
		}
		io.WriteString(stdout, r.Out)
		if r.Code != exitOK {
			return fail(r.Code, r.Error, r.Hint)
		}
		return nil
	}
	ctx := context.Background()
	n, err := openNode(ctx, c.data, slog.New(slog.DiscardHandler), stderr)
	if errors.Is(err, errLocked) {
		return errSocketSilent()
	}
	if err != nil {
		return err
	}
	defer n.close()
	d, err := account.Open(ctx, n.db, n.barrier, account.DefaultOptions(n.audit))
	if err != nil {
		return err
	}
	by := "operator:uid-" + strconv.Itoa(os.Getuid())
	var out bytes.Buffer
	if err := c.run(ctx, d, by, pw, &out); err != nil {
		return acctError(err)
	}
	if err := c.auditRead(ctx, n.audit, by); err != nil {
		return fail(exitFail, "the audit log is unavailable; nothing is shown", "")
	}
	_, err = stdout.Write(out.Bytes())
	return err
}

// readRecorder is the audit log as the account commands use it.
type readRecorder interface {
	Record(ctx context.Context, e *audit.Event) error
}

// auditRead durably records the read of a command that only shows
// accounts (nothing for the others, whose changes the directory audits).
func (c *acctCall) auditRead(ctx context.Context, rec readRecorder, by string) error {
	if c.read == "" {
		return nil
	}
	ev := &audit.Event{Time: time.Now(), Interaction: c.read, Action: "R", Outcome: audit.Success, UserID: by,
		Roles: []string{authn.OperatorRole}, Allowed: true, Policies: []string{"operator-path"}}
	if c.target != "" {
		ev.Entities = []string{"urn:phivault:user:" + c.target}
	}
	return rec.Record(ctx, ev)
}

// accountsAdminHandler serves POST /admin/accounts on the admin socket:
// it runs an account command line against d as the socket's operator.
func accountsAdminHandler(d *account.Directory, rec readRecorder) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req acctRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var out strings.Builder
		resp := acctResponse{}
		by := "operator:admin-socket"
		if p, ok := policy.PrincipalFrom(r.Context()); ok {
			by = p.UserID
		}
		c, err := parseAccount(req.Cmd, req.Args, io.Discard)
		if err == nil {
			err = c.run(r.Context(), d, by, account.Password(req.Password), &out)
			if err != nil {
				err = acctError(err)
			} else if aerr := c.auditRead(r.Context(), rec, by); aerr != nil {
				out.Reset() // nothing leaves without its event
				err = fail(exitFail, "the audit log is unavailable; nothing is shown", "try again")
			}
		}
		resp.Out = out.String()
		var ce *cliError
		switch {
		case err == nil:
		case errors.Is(err, flag.ErrHelp):
		case errors.As(err, &ce):
			resp.Error, resp.Hint, resp.Code = ce.msg, ce.hint, ce.code
		default:
			resp.Error, resp.Code = err.Error(), exitFail
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	}
}
