package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"

	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
)

// sealState is the seal/unseal machinery of a server whose key file is
// split into Shamir shares. While sealed the server holds no key: its
// Sealable KEK is empty and its barrier closed (keys zeroed), and every
// FHIR request gets 503. Shares arrive one at a time on the admin socket.
type sealState struct {
	path      string
	threshold int
	shares    int
	unsealer  *keys.Unsealer
	kek       *keys.Sealable
	sealed    atomic.Bool
	have      atomic.Int32

	mu       sync.Mutex // serializes seal and unseal
	unsealed chan struct{}
	by       string       // the operator whose share completed the last unseal (audit agent)
	epoch    atomic.Int64 // the cluster's seal epoch when this node was last unsealed (seal_cluster.go)
}

// operatorOf names the admin socket's caller for audit events.
func operatorOf(r *http.Request) string {
	if p, ok := policy.PrincipalFrom(r.Context()); ok && p.UserID != "" {
		return p.UserID
	}
	return "operator:admin-socket"
}

// openServeNode opens the node for serve. With a Shamir key file it
// starts sealed and waits for shares (see waitUnsealed).
func openServeNode(ctx context.Context, o serveOptions, log *slog.Logger, stderr io.Writer) (*node, error) {
	path := filepath.Join(o.data, keyFileName)
	kind, t, sh, err := keys.Protection(path)
	if err != nil || kind != "shamir" {
		return openNode(ctx, o.data, log, stderr)
	}
	n, err := lockNode(o.data, log)
	if err != nil {
		return nil, err
	}
	s := &sealState{path: path, threshold: t, shares: sh, unsealer: keys.NewUnsealer(path), kek: keys.NewSealable(nil), unsealed: make(chan struct{}, 1)}
	s.sealed.Store(true)
	n.seal = s
	if err := n.waitUnsealed(ctx, o, log); err != nil {
		n.close()
		return nil, err
	}
	if err := n.open(ctx, s.kek); err != nil {
		n.close()
		return nil, err
	}
	if err := n.auditKeys(ctx, s.by, "key-unseal", "unsealed at start"); err != nil { // fail closed: do not serve
		n.close()
		return nil, fmt.Errorf("audit of the unseal: %w", err)
	}
	n.noteUnsealed(ctx)
	s.sealed.Store(false)
	log.Info("unsealed")
	return n, nil
}

// waitUnsealed serves, until enough shares have been given, a 503 on the
// HTTPS address and the unseal endpoints on the admin socket.
func (n *node) waitUnsealed(ctx context.Context, o serveOptions, log *slog.Logger) error {
	var cert tls.Certificate
	var err error
	if o.certFile != "" || o.keyFile != "" {
		cert, err = tls.LoadX509KeyPair(o.certFile, o.keyFile)
	} else {
		cert, _, err = server.DevCertificate(filepath.Join(o.data, tlsDirName))
	}
	if err != nil {
		return fail(exitUsage, "cannot load the TLS certificate: "+err.Error(), "--tls-cert and --tls-key take PEM files")
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fail(exitFail, "cannot listen on "+o.listen+": "+err.Error(), "pick another address with --listen")
	}
	srv := server.NewHTTPServer(n.gate(nil), log)
	srv.TLSConfig = server.TLSConfig(cert)
	adminLn, err := server.ListenAdmin(filepath.Join(o.data, server.SocketName))
	if err != nil {
		ln.Close()
		return fmt.Errorf("admin socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", n.gate(nil))
	n.adminSealRoutes(mux)
	admin := server.NewHTTPServer(server.AdminHandler(mux), log)
	admin.ConnContext = server.AdminConnContext
	go srv.ServeTLS(ln, "", "")
	go admin.Serve(adminLn)
	log.Warn("SEALED: the key file is split into shares; give them with 'phivault unseal'", "threshold", n.seal.threshold, "shares", n.seal.shares,
		"url", "https://"+publicHost(ln.Addr(), o.listen))
	select {
	case <-ctx.Done():
		err = ctx.Err()
	case <-n.seal.unsealed:
	}
	server.Shutdown(admin, 5*time.Second)
	server.Shutdown(srv, 5*time.Second)
	return err
}

// gate answers 503 while the server is sealed, and passes to h otherwise.
// A sealed answer says how many shares were given and nothing else.
func (n *node) gate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.seal == nil || !n.seal.sealed.Load() {
			h.ServeHTTP(w, r)
			return
		}
		msg := fmt.Sprintf("sealed: %d of %d shares given; an operator unseals the server with 'phivault unseal'", n.seal.have.Load(), n.seal.threshold)
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]any{"resourceType": "OperationOutcome", "issue": []any{
			map[string]any{"severity": "error", "code": "transient", "diagnostics": msg}}})
	})
}

// adminSealRoutes adds the seal, unseal and key routes to the admin mux.
func (n *node) adminSealRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /admin/unseal", n.adminUnseal)
	mux.HandleFunc("POST /admin/seal", n.adminSeal)
	mux.HandleFunc("GET /admin/seal-status", n.adminSealStatus)
	mux.HandleFunc("/admin/keys/{op}", func(w http.ResponseWriter, r *http.Request) {
		if n.seal != nil && n.seal.sealed.Load() {
			http.Error(w, "sealed: unseal first", http.StatusServiceUnavailable)
			return
		}
		n.adminKeysHandler(w, r)
	})
}

type sealStatus struct {
	Sealed    bool   `json:"sealed"`
	Have      int    `json:"have"`
	Threshold int    `json:"threshold"`
	Shares    int    `json:"shares"`
	Error     string `json:"error,omitempty"`
}

func (n *node) status(errText string) sealStatus {
	s := n.seal
	return sealStatus{Sealed: s.sealed.Load(), Have: int(s.have.Load()), Threshold: s.threshold, Shares: s.shares, Error: errText}
}

func writeStatus(w http.ResponseWriter, code int, st sealStatus) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(st)
}

func (n *node) noShares(w http.ResponseWriter) bool {
	if n.seal == nil {
		http.Error(w, "this server's key file is not split into shares (see 'phivault keys split')", http.StatusConflict)
		return true
	}
	return false
}

func (n *node) adminSealStatus(w http.ResponseWriter, r *http.Request) {
	if n.noShares(w) {
		return
	}
	writeStatus(w, http.StatusOK, n.status(""))
}

// adminUnseal takes one share (the request body). At the threshold it
// opens the key file and unseals; shares that do not open it are all
// forgotten, without saying which was wrong.
func (n *node) adminUnseal(w http.ResponseWriter, r *http.Request) {
	if n.noShares(w) {
		return
	}
	s := n.seal
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
	defer clear(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sealed.Load() {
		writeStatus(w, http.StatusOK, n.status("already unsealed"))
		return
	}
	have, _, f, err := s.unsealer.Add(keys.Secret(strings.TrimSpace(string(body))))
	s.have.Store(int32(have))
	switch {
	case errors.Is(err, keys.ErrMalformedShare):
		writeStatus(w, http.StatusBadRequest, n.status("the share is mistyped (it was not counted)"))
		return
	case errors.Is(err, keys.ErrDuplicateShare):
		writeStatus(w, http.StatusBadRequest, n.status("this share was already given"))
		return
	case err != nil:
		s.have.Store(0)
		n.log.Warn("unseal failed: the shares do not open the key file; all shares given were discarded")
		writeStatus(w, http.StatusBadRequest, n.status("the shares do not open the key file; all shares given so far were discarded: start again"))
		return
	case f == nil:
		writeStatus(w, http.StatusOK, n.status(""))
		return
	}
	s.kek.Unseal(f)
	s.by = operatorOf(r)
	if n.barrier != nil { // sealed at run time: reopen the same barrier
		if err := n.barrier.Reopen(r.Context()); err != nil {
			s.kek.Seal()
			s.have.Store(0)
			writeStatus(w, http.StatusInternalServerError, n.status("the key file opened but the store's keys did not: "+err.Error()))
			return
		}
		if err := n.auditKeys(r.Context(), s.by, "key-unseal", "unsealed at run time"); err != nil { // fail closed: stay sealed
			n.barrier.Close()
			s.kek.Seal()
			s.have.Store(0)
			writeStatus(w, http.StatusServiceUnavailable, n.status("the audit log is unavailable; the server stays sealed"))
			return
		}
		n.noteUnsealed(r.Context())
		s.sealed.Store(false)
		n.log.Info("unsealed")
	} else {
		select { // first unseal: openServeNode finishes the start
		case s.unsealed <- struct{}{}:
		default:
		}
	}
	s.have.Store(0)
	st := n.status("")
	st.Sealed = false
	writeStatus(w, http.StatusOK, st)
}

// adminSeal wipes the keys from memory at once: new requests get 503
// first, then the KEK is dropped and the barrier's keys are zeroed. Then
// it raises the cluster's seal epoch, so that every other node sharing
// the store seals too (seal_cluster.go).
func (n *node) adminSeal(w http.ResponseWriter, r *http.Request) {
	if n.noShares(w) {
		return
	}
	n.sealNow(r.Context(), operatorOf(r), "keys wiped from memory")
	if n.db != nil {
		if e, err := raiseSealEpoch(context.WithoutCancel(r.Context()), n.db); err != nil {
			n.log.Error("sealed, but the other nodes of a cluster could not be told: seal each of them", "err", err.Error())
		} else {
			n.log.Warn("cluster seal epoch raised: every node sharing the store seals", "epoch", e)
		}
	}
	writeStatus(w, http.StatusOK, n.status(""))
}

// sealNow seals this node: 503 at once, the KEK dropped, the barrier's
// keys zeroed. The seal is audited while the keys are still held; being
// the emergency stop, it goes ahead even if the record fails.
func (n *node) sealNow(ctx context.Context, by, detail string) {
	s := n.seal
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sealed.Load() && n.db != nil {
		if err := n.auditKeys(ctx, by, "key-seal", detail); err != nil {
			n.log.Error("the audit of a seal failed; sealing anyway", "err", err.Error())
		}
	}
	s.sealed.Store(true)
	s.kek.Seal()
	if n.barrier != nil {
		n.barrier.Close()
	}
	s.unsealer.Reset()
	s.have.Store(0)
	n.log.Warn("SEALED: keys wiped from memory", "by", by, "why", detail)
}

// runUnseal gives one share to the running server.
func runUnseal(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("unseal", "--data DIR (the share from a prompt, or one line on stdin)", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needData(*data, "unseal"); err != nil {
		return err
	}
	var share string
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		fmt.Fprint(stderr, "Share: ")
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return err
		}
		share = string(b)
	} else {
		share, _ = bufio.NewReader(stdin).ReadString('\n')
	}
	if strings.TrimSpace(share) == "" {
		return fail(exitUsage, "no share given", "paste the share (pvs1-...) at the prompt, or pipe it on stdin")
	}
	return adminSealCall(*data, "unseal", share, stdout)
}

// runSeal seals the running server.
func runSeal(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("seal", "--data DIR", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needData(*data, "seal"); err != nil {
		return err
	}
	return adminSealCall(*data, "seal", "", stdout)
}

func adminSealCall(dir, op, body string, stdout io.Writer) error {
	c := server.AdminClient(filepath.Join(dir, server.SocketName))
	resp, err := c.Post("http://phivault/admin/"+op, "text/plain", strings.NewReader(body))
	if err != nil {
		return fail(exitFail, "no server is running on "+dir, "'phivault serve' starts sealed and then takes shares; offline commands ask for shares themselves")
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var st sealStatus
	if json.Unmarshal(raw, &st) != nil {
		return fail(exitFail, "the server refused: "+strings.TrimSpace(string(raw)), "")
	}
	if st.Error != "" && resp.StatusCode != http.StatusOK {
		return fail(exitKeys, st.Error, fmt.Sprintf("%d of %d shares are held now", st.Have, st.Threshold))
	}
	switch {
	case !st.Sealed:
		fmt.Fprintln(stdout, "unsealed: the server is serving")
	case op == "seal":
		fmt.Fprintf(stdout, "sealed: keys wiped from memory; %d of %d shares unseal it\n", st.Threshold, st.Shares)
	default:
		fmt.Fprintf(stdout, "share accepted: %d of %d shares given; still sealed\n", st.Have, st.Threshold)
	}
	return nil
}
