package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
)

// acctCall is one parsed account command (user, training, access-review):
// it runs the same way offline (the CLI opened the data directory) and
// online (the server runs it for its admin socket).
type acctCall struct {
	data     string
	needPW   bool // the command takes a new password
	stdinPW  bool // --password-stdin
	password account.Password
	run      func(ctx context.Context, d *account.Directory, by string, pw account.Password, out io.Writer) error
	// read names the audit interaction of a command that only shows
	// accounts (user list, user show, the access review report), and
	// target the account shown; the event is recorded before the output
	// leaves (auditRead).
	read, target string
}

var userSubs = "add, list, show, disable, enable, unlock, roles, password or revoke"

func runUser(args []string, stdout, stderr io.Writer) error {
	return runAccountCmd("user", args, stdout, stderr)
}

func runTraining(args []string, stdout, stderr io.Writer) error {
	return runAccountCmd("training", args, stdout, stderr)
}

// parseUser parses `user SUB ...`.
func parseUser(args []string, stderr io.Writer) (*acctCall, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return nil, fail(exitUsage, "user needs a subcommand: "+userSubs, "phivault user add --data DIR USER --role nurse")
	}
	sub := args[0]
	usage := map[string]string{
		"add":      "--data DIR USER --role ROLE[,ROLE] [--name NAME] [--practitioner ID] [--patient ID] [--department D] [--password-stdin]",
		"list":     "--data DIR",
		"show":     "--data DIR USER",
		"disable":  "--data DIR USER --reason TEXT",
		"enable":   "--data DIR USER [--reason TEXT]",
		"unlock":   "--data DIR USER",
		"roles":    "--data DIR USER --set ROLE[,ROLE]",
		"password": "--data DIR USER [--password-stdin]",
		"revoke":   "--data DIR USER",
	}[sub]
	if usage == "" {
		return nil, fail(exitUsage, fmt.Sprintf("unknown user subcommand %q", sub), "use one of "+userSubs)
	}
	fs, data := newFlags("user "+sub, usage, stderr)
	var role, set, name, prac, pat, dept, reason *string
	var pwStdin *bool
	switch sub {
	case "add":
		role = fs.String("role", "", "roles, comma-separated ("+strings.Join(account.Roles, ", ")+")")
		name = fs.String("name", "", "display name")
		prac = fs.String("practitioner", "", "FHIR Practitioner id the user acts as")
		pat = fs.String("patient", "", "for patient users: their Patient id")
		dept = fs.String("department", "", "department")
	case "roles":
		set = fs.String("set", "", "the new roles, comma-separated")
	case "disable", "enable":
		reason = fs.String("reason", "", "why (recorded in the audit log)")
	}
	if sub == "add" || sub == "password" {
		pwStdin = fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	}
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return nil, err
	}
	c := &acctCall{data: *data, needPW: pwStdin != nil}
	if pwStdin != nil {
		c.stdinPW = *pwStdin
	}
	if sub == "list" {
		if len(pos) != 0 {
			return nil, fail(exitUsage, "user list takes no arguments", "phivault user list --data DIR")
		}
		c.run = func(ctx context.Context, d *account.Directory, _ string, _ account.Password, out io.Writer) error {
			return listUsers(ctx, d, out)
		}
		c.read = "user-list"
		return c, nil
	}
	if len(pos) != 1 || pos[0] == "" {
		return nil, fail(exitUsage, "give exactly one user id", "phivault user "+sub+" "+usage)
	}
	id := pos[0]
	switch sub {
	case "add":
		roles := splitList(*role)
		if len(roles) == 0 {
			return nil, fail(exitUsage, "--role is required", "e.g. --role physician (known: "+strings.Join(account.Roles, ", ")+")")
		}
		a := account.Account{ID: id, Name: *name, Roles: roles, Practitioner: *prac, Patient: *pat, Department: *dept}
		c.run = func(ctx context.Context, d *account.Directory, by string, pw account.Password, out io.Writer) error {
			if err := d.Create(ctx, a, pw, by); err != nil {
				return err
			}
			fmt.Fprintf(out, "created user %s with roles %s\n", id, strings.Join(roles, ","))
			return nil
		}
	case "show":
		c.run = func(ctx context.Context, d *account.Directory, _ string, _ account.Password, out io.Writer) error {
			return showUser(ctx, d, id, out)
		}
		c.read, c.target = "user-read", id
	case "disable":
		if strings.TrimSpace(*reason) == "" {
			return nil, fail(exitUsage, "--reason is required", "say why, e.g. --reason 'left the hospital'")
		}
		c.run = simple(id, func(ctx context.Context, d *account.Directory, by string) error {
			return d.Disable(ctx, id, by, *reason)
		},
			"disabled %s; every session and token of the user has stopped working\n")
	case "enable":
		c.run = simple(id, func(ctx context.Context, d *account.Directory, by string) error {
			return d.Enable(ctx, id, by, *reason)
		},
			"enabled %s; the user can log in again (old sessions stay ended)\n")
	case "unlock":
		c.run = simple(id, func(ctx context.Context, d *account.Directory, by string) error { return d.Unlock(ctx, id, by) },
			"unlocked %s\n")
	case "revoke":
		c.run = simple(id, func(ctx context.Context, d *account.Directory, by string) error { return d.Revoke(ctx, id, by) },
			"revoked every session and token of %s\n")
	case "roles":
		roles := splitList(*set)
		if len(roles) == 0 {
			return nil, fail(exitUsage, "--set is required", "e.g. phivault user roles --data DIR "+id+" --set nurse")
		}
		c.run = simple(id, func(ctx context.Context, d *account.Directory, by string) error {
			return d.SetRoles(ctx, id, roles, by)
		},
			"%s now holds roles "+strings.Join(roles, ",")+"\n")
	case "password":
		c.run = func(ctx context.Context, d *account.Directory, by string, pw account.Password, out io.Writer) error {
			if err := d.SetPassword(ctx, id, pw, by); err != nil {
				return err
			}
			fmt.Fprintf(out, "password of %s changed\n", id)
			return nil
		}
	}
	return c, nil
}

func simple(id string, f func(context.Context, *account.Directory, string) error, msg string) func(context.Context, *account.Directory, string, account.Password, io.Writer) error {
	return func(ctx context.Context, d *account.Directory, by string, _ account.Password, out io.Writer) error {
		if err := f(ctx, d, by); err != nil {
			return err
		}
		fmt.Fprintf(out, msg, id)
		return nil
	}
}

// parseTraining parses `training record USER --course C --completed DATE --expires DATE`.
func parseTraining(args []string, stderr io.Writer) (*acctCall, error) {
	const usage = "--data DIR USER --course hipaa --completed DATE --expires DATE"
	if len(args) == 0 || args[0] != "record" {
		return nil, fail(exitUsage, "training needs the subcommand record", "phivault training record "+usage)
	}
	fs, data := newFlags("training record", usage, stderr)
	course := fs.String("course", "hipaa", "course code")
	completed := fs.String("completed", "", "completion date (YYYY-MM-DD or RFC 3339)")
	expires := fs.String("expires", "", "expiry date (YYYY-MM-DD or RFC 3339)")
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return nil, err
	}
	if len(pos) != 1 || pos[0] == "" {
		return nil, fail(exitUsage, "give exactly one user id", "phivault training record "+usage)
	}
	c, err1 := parseDate("--completed", *completed)
	e, err2 := parseDate("--expires", *expires)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fail(exitUsage, err.Error(), "dates look like 2026-03-01")
	}
	id, t := pos[0], account.Training{Course: *course, Completed: c, Expires: e}
	return &acctCall{data: *data, run: func(ctx context.Context, d *account.Directory, by string, _ account.Password, out io.Writer) error {
		if err := d.RecordTraining(ctx, id, t, by); err != nil {
			return err
		}
		fmt.Fprintf(out, "recorded %s training of %s, valid until %s\n", t.Course, id, e.Format(time.DateOnly))
		return nil
	}}, nil
}

func parseDate(flagName, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("%s is required", flagName)
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%s %q is not a date", flagName, s)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func listUsers(ctx context.Context, d *account.Directory, out io.Writer) error {
	list, err := d.List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tROLES\tSTATE\tLAST LOGIN\tMFA")
	for _, a := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.ID, strings.Join(a.Roles, ","), state(a), when(a.LastLogin), orNone(a.MFAEnrolled))
	}
	return tw.Flush()
}

func showUser(ctx context.Context, d *account.Directory, id string, out io.Writer) error {
	a, err := d.Get(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "user:         %s\nname:         %s\nroles:        %s\nstate:        %s\n", a.ID, a.Name, strings.Join(a.Roles, ","), state(a))
	for _, f := range [][2]string{{"practitioner", a.Practitioner}, {"patient", a.Patient}, {"department", a.Department}} {
		if f[1] != "" {
			fmt.Fprintf(out, "%-13s %s\n", f[0]+":", f[1])
		}
	}
	fmt.Fprintf(out, "created:      %s\nlast login:   %s\nmfa:          %s\nepoch:        %d\n", when(a.Created), when(a.LastLogin), orNone(a.MFAEnrolled), a.Epoch)
	for _, t := range a.Training {
		fmt.Fprintf(out, "training:     %s completed %s, expires %s (recorded by %s)\n", t.Course, t.Completed.Format(time.DateOnly), t.Expires.Format(time.DateOnly), t.Recorded)
	}
	if !a.Reviewed.IsZero() {
		fmt.Fprintf(out, "reviewed:     %s by %s\n", when(a.Reviewed), a.ReviewedBy)
	}
	return nil
}

func state(a account.Account) string {
	switch {
	case a.Disabled:
		return "disabled"
	case time.Now().Before(a.LockedUntil):
		return "locked"
	}
	return "active"
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ",")
}

// readNewPassword reads the password for add/password: the first line of
// in with --password-stdin, else twice from the terminal.
func readNewPassword(in io.Reader, fromStdin bool, stderr io.Writer) (account.Password, error) {
	if fromStdin {
		line, err := bufio.NewReader(io.LimitReader(in, account.MaxPasswordBytes+2)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			return "", fail(exitUsage, "no password on standard input", "pipe it in: printf '%s\\n' \"$PW\" | phivault user ... --password-stdin")
		}
		return account.Password(line), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", fail(exitUsage, "there is no terminal to ask for the password", "pass --password-stdin and pipe the password in")
	}
	fmt.Fprint(stderr, "New password: ")
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(stderr, "New password again: ")
	q, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", err
	}
	if string(p) != string(q) {
		return "", fail(exitUsage, "the passwords do not match", "run the command again")
	}
	return account.Password(p), nil
}

// acctError turns the account package's errors into one line and a hint.
func acctError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "account: ")
	switch {
	case errors.Is(err, account.ErrNotFound):
		return fail(exitFail, "no such user", "list users with 'phivault user list --data DIR'")
	case errors.Is(err, account.ErrExists):
		return fail(exitFail, msg, "pick another user id, or change this one with 'phivault user roles'")
	case errors.Is(err, account.ErrWeakPassword):
		return fail(exitUsage, msg, "use at least 12 characters that are not a common password; a few random words work well")
	case errors.Is(err, account.ErrSeparation), errors.Is(err, account.ErrInvalid):
		return fail(exitUsage, msg, "")
	case errors.Is(err, audit.ErrUnavailable):
		return fail(exitFail, "the audit log is unavailable; the change may not be recorded", "check the disk and try again")
	}
	return err
}
