package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/server"
	"github.com/phivault/phivault/internal/store"
)

func runKeys(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fail(exitUsage, "keys needs a subcommand: split, rotate, status or retire", "phivault keys status --data DIR")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "split":
		fs, data := newFlags("keys split", "--data DIR --shares N --threshold K", stderr)
		shares := fs.Int("shares", 5, "number of shares to make")
		threshold := fs.Int("threshold", 3, "number of shares that unseal")
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if err := needData(*data, "keys"); err != nil {
			return err
		}
		return keysSplit(*data, *shares, *threshold, stdout, stderr)
	case "rotate", "status", "retire":
		fs, data := newFlags("keys "+sub, "--data DIR"+map[bool]string{true: " --version N"}[sub == "retire"], stderr)
		version := fs.Int("version", 0, "KEK version to retire")
		stopped := fs.Bool("nodes-stopped", false, "rotate: on a PostgreSQL store, confirm that every other node sharing it is stopped (see docs/keys.md)")
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if err := needData(*data, "keys"); err != nil {
			return err
		}
		if sub == "retire" && *version < 1 {
			return fail(exitUsage, "--version is required", "see the versions with 'phivault keys status'")
		}
		return keysOp(*data, sub, *version, *stopped, stdout, stderr)
	}
	return fail(exitUsage, "unknown keys subcommand "+strconv.Quote(sub), "use split, rotate, status or retire")
}

// keysSplit converts the key file to Shamir protection (offline).
func keysSplit(dir string, n, t int, stdout, stderr io.Writer) error {
	if t < 2 || n < t || n > 255 {
		return fail(exitUsage, fmt.Sprintf("cannot make %d shares with threshold %d", n, t), "need 2 <= --threshold <= --shares <= 255")
	}
	path := filepath.Join(dir, keyFileName)
	resplit := false
	if kind, _, _, err := keys.Protection(path); err == nil && kind == "shamir" {
		resplit = true // re-split: K current shares open it, then new shares replace them
	}
	lock, err := lockDir(dir)
	if errors.Is(err, errLocked) {
		return fail(exitFail, "a server is serving "+dir, "stop it, split the key, then start it and unseal with 'phivault unseal'")
	}
	if err != nil {
		return err
	}
	defer lock.Close()
	kek, err := openKEK(dir, stderr)
	if err != nil {
		return err
	}
	f, ok := kek.(*keys.File)
	if !ok {
		closeKEK(kek)
		return fail(exitUsage, "keys split applies to a key file; the KEK of "+dir+" is in a PKCS#11 token", "the token's PIN and the HSM's own controls protect it")
	}
	shares, err := f.Split(n, t)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "The key file %s is now protected by %d shares; any %d of them unseal it.\n", path, n, t)
	fmt.Fprintf(stdout, "They are shown this once and stored nowhere. Give each to a different officer.\n\n")
	for i, s := range shares {
		fmt.Fprintf(stdout, "share %d: %s\n", i+1, string(s))
		clear(s)
	}
	if resplit {
		fmt.Fprintf(stdout, "\nThe previous shares no longer open the key file (backups of the old kek.json still do).\n")
	}
	fmt.Fprintf(stdout, "\n'phivault serve' now starts sealed; unseal it with 'phivault unseal --data %s', once per officer.\n", dir)
	return nil
}

// openKEKShares opens a Shamir-protected key file for an offline command:
// shares come from PHIVAULT_SHARES (comma-separated) or one per line from
// the terminal (not echoed) or stdin.
func openKEKShares(path string, threshold int, stderr io.Writer) (*keys.File, error) {
	var shares []keys.Secret
	if env := os.Getenv("PHIVAULT_SHARES"); env != "" {
		for _, s := range strings.Split(env, ",") {
			shares = append(shares, keys.Secret(strings.TrimSpace(s)))
		}
	} else {
		fd := int(os.Stdin.Fd())
		tty := term.IsTerminal(fd)
		rd := bufio.NewReader(stdin)
		for i := range threshold {
			var line []byte
			var err error
			if tty {
				fmt.Fprintf(stderr, "Share %d of %d: ", i+1, threshold)
				line, err = term.ReadPassword(fd)
				fmt.Fprintln(stderr)
			} else {
				var s string
				s, err = rd.ReadString('\n')
				line = []byte(s)
			}
			if strings.TrimSpace(string(line)) == "" {
				return nil, fail(exitKeys, fmt.Sprintf("the key file is sealed by shares and %d of %d were given", i, threshold), "give one share a line on stdin, or set PHIVAULT_SHARES")
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			shares = append(shares, keys.Secret(strings.TrimSpace(string(line))))
		}
	}
	f, err := keys.OpenFileShares(path, shares)
	switch {
	case errors.Is(err, keys.ErrMalformedShare):
		return nil, fail(exitKeys, "a share is mistyped", "each share is one line starting with pvs1-; check it character by character")
	case err != nil:
		return nil, fail(exitKeys, "the shares do not open the key file", "one of them is wrong or from another key file; nothing says which")
	}
	return f, nil
}

// keysOp runs rotate, status or retire through a running server's admin
// socket, or on the data directory itself when no server runs.
// nodesStopped is rotate's --nodes-stopped (see rotationAllowed).
func keysOp(dir, op string, version int, nodesStopped bool, stdout, stderr io.Writer) error {
	c := server.AdminClient(filepath.Join(dir, server.SocketName))
	method := http.MethodPost
	if op == "status" {
		method = http.MethodGet
	}
	q := url.Values{"version": {strconv.Itoa(version)}}
	if nodesStopped {
		q.Set("nodes-stopped", "1")
	}
	req, _ := http.NewRequest(method, "http://phivault/admin/keys/"+op+"?"+q.Encode(), nil)
	if resp, err := c.Do(req); err == nil {
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fail(exitFail, "the server refused: "+strings.TrimSpace(string(b)), "")
		}
		fmt.Fprint(stdout, string(b))
		return nil
	}
	n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), stderr)
	if errors.Is(err, errLocked) {
		return fail(exitFail, "a server holds the data directory but its admin socket does not answer", "is it starting or sealed? try again")
	}
	if err != nil {
		return err
	}
	defer n.close()
	if op == "rotate" {
		if err := n.rotationAllowed(nodesStopped); err != nil {
			return err
		}
	}
	out, err := n.keysOp(context.Background(), op, version, fmt.Sprintf("operator:uid-%d", os.Getuid()))
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, out)
	return nil
}

// keysOp does the work of keysOp on an open node and returns the report.
func (n *node) keysOp(ctx context.Context, op string, version int, by string) (string, error) {
	f, ok := n.kek.(rotatingKEK)
	if s, isSealable := n.kek.(*keys.Sealable); isSealable {
		f, ok = s.Held().(rotatingKEK)
	}
	if !ok {
		return "", fail(exitKeys, "the keys are sealed or not held by a key file", "unseal first")
	}
	var b strings.Builder
	switch op {
	case "rotate":
		out, err := n.rotate(ctx, f, by)
		if err != nil {
			return "", err
		}
		b.WriteString(out)
	case "retire":
		u, err := n.barrier.KEKUsage(ctx)
		if err != nil {
			return "", err
		}
		if c := u[f.KEKName(version)]; c > 0 {
			return "", fail(exitFail, fmt.Sprintf("KEK version %d still wraps %d data keys", version, c), "run 'phivault keys rotate' first")
		}
		if err := f.Retire(version); err != nil {
			return "", fail(exitFail, err.Error(), "see the versions with 'phivault keys status'")
		}
		if err := n.auditKeys(ctx, by, "key-retire", fmt.Sprintf("KEK version %d retired", version)); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "KEK version %d retired\n", version)
	}
	u, err := n.barrier.KEKUsage(ctx)
	if err != nil {
		return "", err
	}
	if d, isHSM := f.(interface{ Describe() string }); isHSM {
		fmt.Fprintf(&b, "KEK: %s\n", d.Describe())
	} else {
		kind, t, sh, _ := keys.Protection(filepath.Join(n.dir, keyFileName))
		if kind == "shamir" {
			kind = fmt.Sprintf("shamir (%d of %d shares)", t, sh)
		}
		fmt.Fprintf(&b, "key file: %s, protection: %s\n", filepath.Join(n.dir, keyFileName), kind)
	}
	vs := f.Versions()
	sort.Sort(sort.Reverse(sort.IntSlice(vs)))
	for _, v := range vs {
		cur := ""
		if f.KEKName(v) == f.Current() {
			cur = " (current)"
		}
		fmt.Fprintf(&b, "  version %d%s: wraps %d data keys\n", v, cur, u[f.KEKName(v)])
		delete(u, f.KEKName(v))
	}
	fmt.Fprintf(&b, "destroyed data keys: %d\n", u["destroyed"])
	if r := n.rot.report(); r != "" {
		b.WriteString(r)
	}
	delete(u, "destroyed")
	for k, c := range u {
		fmt.Fprintf(&b, "  WARNING: %d data keys wrapped by %s, which this KEK provider does not hold\n", c, k)
	}
	return b.String(), nil
}

func (n *node) auditKeys(ctx context.Context, by, interaction, desc string) error {
	ev := &audit.Event{Time: time.Now().UTC(), Interaction: interaction, Action: "E", Outcome: audit.Success, OutcomeDesc: desc,
		UserID: by, Roles: []string{"administrator"}, Allowed: true, Policies: []string{"operator-path"}}
	return n.db.Update(ctx, func(tx store.Writer) error {
		_, err := tx.AppendAudit(ev.Leaf())
		return err
	})
}

// adminKeysHandler serves /admin/keys/{rotate,status,retire} on the admin
// socket.
func (n *node) adminKeysHandler(w http.ResponseWriter, r *http.Request) {
	op := r.PathValue("op")
	if op != "rotate" && op != "status" && op != "retire" {
		http.Error(w, "unknown operation", http.StatusNotFound)
		return
	}
	v, _ := strconv.Atoi(r.URL.Query().Get("version"))
	ctx := r.Context()
	if op == "rotate" {
		if err := n.rotationAllowed(r.URL.Query().Get("nodes-stopped") == "1"); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		// A rotation outlives its request: an operator who interrupts the
		// command (or a socket timeout) does not stop it halfway; 'keys
		// status' shows its progress.
		ctx = context.WithoutCancel(ctx)
	}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := n.keysOp(ctx, op, v, operatorOf(r))
		done <- result{out, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-r.Context().Done():
		return // the caller left; a rotation goes on
	}
	out, err := res.out, res.err
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, out)
}
