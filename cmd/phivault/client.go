package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/smart"
	"github.com/phivault/phivault/internal/server"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func runClient(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fail(exitUsage, "client needs a subcommand: add, list or remove", "e.g. phivault client add --data DIR --name NAME --type public --redirect-uri URI --scope \"launch/patient patient/*.rs openid fhirUser\"")
	}
	switch args[0] {
	case "add":
		return runClientAdd(args[1:], stdout, stderr)
	case "list":
		return runClientList(args[1:], stdout, stderr)
	case "remove":
		return runClientRemove(args[1:], stdout, stderr)
	}
	return fail(exitUsage, fmt.Sprintf("unknown client subcommand %q", args[0]), "use add, list or remove")
}

func runClientAdd(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("client add", "--data DIR --name NAME --type public|confidential|backend [--redirect-uri URI]... --scope \"SCOPES\" [--jwks FILE] [--role ROLE]", stderr)
	name := fs.String("name", "", "the app's name, shown on the consent page")
	typ := fs.String("type", "", "public (browser or native app, PKCE), confidential (server-side app with a secret, or --jwks), backend (system, --jwks and --role)")
	var redirects stringList
	fs.Var(&redirects, "redirect-uri", "a redirect URI, matched exactly (repeatable)")
	scope := fs.String("scope", "", "space-separated scopes the client may ask for")
	jwksFile := fs.String("jwks", "", "file holding the client's public JSON Web Key Set (RS384 or ES384 keys)")
	role := fs.String("role", "", "backend clients: the role the system acts as (device, vendor, ...)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needData(*data, "client"); err != nil {
		return err
	}
	c := smart.Client{Name: *name, Type: *typ, RedirectURIs: redirects, Scopes: strings.Fields(*scope), Role: *role}
	if *jwksFile != "" {
		raw, err := os.ReadFile(*jwksFile)
		if err != nil {
			return fail(exitUsage, "cannot read the JWKS file: "+err.Error(), "pass the path of a JSON file holding {\"keys\": [...]}")
		}
		c.JWKS = raw
	}
	var out struct {
		Client smart.Client
		Secret string
	}
	body, _ := json.Marshal(c)
	err := viaAdmin(*data, http.MethodPost, "/admin/client", body, &out, func(n *node) error {
		cl, sec, err := n.clientAdd(context.Background(), smart.NewClients(n.db, n.barrier), c, "operator:cli")
		out.Client, out.Secret = cl, sec.Reveal()
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "client_id: %s\n", out.Client.ID)
	if out.Secret != "" {
		fmt.Fprintf(stdout, "client_secret: %s\n", out.Secret)
		fmt.Fprintln(stderr, "phivault client add: the secret is shown only this once; only its hash is kept")
	}
	return nil
}

func runClientList(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("client list", "--data DIR", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needData(*data, "client"); err != nil {
		return err
	}
	var list []smart.Client
	err := viaAdmin(*data, http.MethodGet, "/admin/clients", nil, &list, func(n *node) error {
		var err error
		list, err = smart.NewClients(n.db, n.barrier).List(context.Background())
		return err
	})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tNAME\tROLE\tSCOPES\tREDIRECT URIS")
	for _, c := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Type, c.Name, dash(c.Role), strings.Join(c.Scopes, " "), dash(strings.Join(c.RedirectURIs, " ")))
	}
	return tw.Flush()
}

func runClientRemove(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("client remove", "--data DIR CLIENT_ID", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needData(*data, "client"); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fail(exitUsage, "client remove needs exactly one client id", "see the ids with 'phivault client list --data DIR'")
	}
	id := fs.Arg(0)
	err := viaAdmin(*data, http.MethodPost, "/admin/client/remove", []byte(`{"id":`+jsonString(id)+`}`), nil, func(n *node) error {
		return n.clientRemove(context.Background(), smart.NewClients(n.db, n.barrier), id, "operator:cli")
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed client %s; its tokens stop working within seconds\n", id)
	return nil
}

// viaAdmin runs a client operation through a running server's admin
// socket, or opens the data directory itself when no server holds it.
func viaAdmin(dir, method, path string, body []byte, out any, offline func(*node) error) error {
	c := server.AdminClient(filepath.Join(dir, server.SocketName))
	req, _ := http.NewRequest(method, "http://phivault"+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err == nil {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		switch {
		case resp.StatusCode == http.StatusNotFound && strings.Contains(string(b), "404 page not found"):
			return fail(exitFail, "the running server does not offer client registration on its admin socket", "stop the server, run the command, and start it again")
		case resp.StatusCode != http.StatusOK:
			return fail(exitUsage, "the server refused: "+strings.TrimSpace(string(b)), "check the flags ('phivault client add -h')")
		}
		if out != nil {
			return json.Unmarshal(b, out)
		}
		return nil
	}
	n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), os.Stderr)
	if errors.Is(err, errLocked) {
		return errSocketSilent()
	}
	if err != nil {
		return err
	}
	defer n.close()
	return clientFail(offline(n))
}

// clientFail turns registry errors into one-line CLI errors.
func clientFail(err error) error {
	var ce *cliError
	switch {
	case err == nil || errors.As(err, &ce):
		return err
	case errors.Is(err, smart.ErrNoClient):
		return fail(exitUsage, "no such client", "see the ids with 'phivault client list --data DIR'")
	case errors.Is(err, audit.ErrUnavailable):
		return fail(exitFail, "the audit log is unavailable; nothing was changed", "check the data directory's disk")
	}
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	return fail(exitUsage, msg, "run 'phivault client add -h' for the flags")
}

// clientAdd registers a client in reg and audits who did it.
func (n *node) clientAdd(ctx context.Context, reg *smart.Clients, c smart.Client, by string) (smart.Client, smart.Secret, error) {
	cl, sec, err := reg.Add(ctx, c)
	if err != nil {
		return cl, sec, err
	}
	return cl, sec, n.auditClient(ctx, "client-register", cl.ID, by)
}

// clientRemove removes a client from reg and audits who did it.
func (n *node) clientRemove(ctx context.Context, reg *smart.Clients, id, by string) error {
	if err := reg.Remove(ctx, id); err != nil {
		return err
	}
	return n.auditClient(ctx, "client-remove", id, by)
}

func (n *node) auditClient(ctx context.Context, interaction, id, by string) error {
	ev := &audit.Event{Time: time.Now(), Interaction: interaction, Action: "E", Outcome: audit.Success, UserID: by,
		Roles: []string{"administrator"}, Allowed: true, Policies: []string{"operator-path"}, Entities: []string{"urn:phivault:client:" + id}}
	return n.audit.Record(ctx, ev)
}

// adminClientRoutes serves client registration on the admin socket:
// POST /admin/client (a smart.Client as JSON), GET /admin/clients and
// POST /admin/client/remove ({"id": ...}). reg is the serving
// authorization server's registry, so that a removal ends the client's
// tokens on this node at once (another node's cache lives 3 s).
func (n *node) adminClientRoutes(mux *http.ServeMux, reg *smart.Clients) {
	reply := func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, audit.ErrUnavailable) {
				status = http.StatusServiceUnavailable
			}
			var ce *cliError
			if errors.As(clientFail(err), &ce) {
				err = ce
			}
			http.Error(w, err.Error(), status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("POST /admin/client", func(w http.ResponseWriter, r *http.Request) {
		var c smart.Client
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&c); err != nil {
			http.Error(w, "the body must be a client as JSON", http.StatusBadRequest)
			return
		}
		cl, sec, err := n.clientAdd(r.Context(), reg, c, operatorOf(r))
		reply(w, struct {
			Client smart.Client
			Secret string
		}{cl, sec.Reveal()}, err)
	})
	mux.HandleFunc("GET /admin/clients", func(w http.ResponseWriter, r *http.Request) {
		l, err := reg.List(r.Context())
		reply(w, l, err)
	})
	mux.HandleFunc("POST /admin/client/remove", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ ID string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&in); err != nil {
			http.Error(w, `the body must be {"id": "..."}`, http.StatusBadRequest)
			return
		}
		reply(w, map[string]string{"removed": in.ID}, n.clientRemove(r.Context(), reg, in.ID, operatorOf(r)))
	})
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
