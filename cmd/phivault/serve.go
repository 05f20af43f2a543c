package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/server"
)

type serveOptions struct {
	data, listen, certFile, keyFile string
	logLevel, witness               string
	alerting                        *alertRouting   // nil: alerts are stored, not routed
	backup                          *backupSchedule // nil: no scheduled backups
	syslog, syslogCA                string
	ssoConfig                       string
	clientCA, clientCRL             string
	acme                            acmeOptions
	ready                           func(url string) // called once listening
	stop                            context.Context  // nil: run until a signal; done: shut down (the restore drill)
}

func runServe(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("serve", "--data DIR [--listen HOST:PORT] [--tls-cert FILE --tls-key FILE]", stderr)
	o := serveOptions{}
	fs.StringVar(&o.listen, "listen", "localhost:8443", "address to listen on (HTTPS)")
	fs.StringVar(&o.certFile, "tls-cert", "", "TLS certificate chain (PEM); default: a generated self-signed development certificate")
	fs.StringVar(&o.keyFile, "tls-key", "", "TLS private key (PEM)")
	fs.StringVar(&o.clientCA, "tls-client-ca", "", "CA bundle (PEM) that issues device client certificates (mTLS); enables the device endpoint /device/fhir/")
	fs.StringVar(&o.clientCRL, "tls-client-crl", "", "revocation list (PEM or DER) for device client certificates, signed by a CA in --tls-client-ca")
	o.acme.register(fs)
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.witness, "audit-witness", "", "append every signed audit checkpoint to this file (keep it outside the data directory)")
	fs.StringVar(&o.ssoConfig, "sso-config", "", "single sign-on through an OpenID Connect provider: a JSON file (see docs/access.md); the client secret comes from "+ssoSecretEnv)
	fs.StringVar(&o.syslog, "syslog", "", "send every audit event to this syslog server, tls://host:port (RFC 5424 over TLS, RFC 5425); see docs/audit.md")
	fs.StringVar(&o.syslogCA, "syslog-ca", "", "CA bundle (PEM) that verifies the --syslog server's certificate")
	o.alerting = &alertRouting{}
	o.alerting.register(fs) // --alert-webhook, --alert-smtp, --alert-syslog ...
	o.backup = &backupSchedule{}
	o.backup.register(fs) // --backup-repo, --backup-every, --backup-max-age (backup_schedule.go)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needData(*data, "serve"); err != nil {
		return err
	}
	if err := o.acme.check(&o); err != nil {
		return err
	}
	o.data = *data
	o.ready = func(url string) { fmt.Fprintf(stdout, "phivault is serving FHIR R4 at %s/fhir\n", url) }
	tuneGC()
	return serve(o, stderr)
}

// serve runs the server until SIGINT or SIGTERM.
func serve(o serveOptions, stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fail(exitUsage, "unknown log level "+o.logLevel, "use debug, info, warn or error")
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	parent := o.stop
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := openServeNode(ctx, o, log, stderr) // waits for shares if the key file is split
	if errors.Is(err, errLocked) {
		return fail(exitFail, "another phivault server is already serving "+o.data, "stop it first, or use another --data directory")
	}
	if err != nil {
		return err
	}
	defer n.close()
	go n.barrier.WatchDestroyed(ctx, 2*time.Second, log) // erasures made by other nodes on a shared store

	certs, err := openCertSource(ctx, o, log) // files or ACME, with OCSP stapling (serve_tls.go)
	if err != nil {
		return err
	}
	var clients *server.ClientCAs
	if o.clientCA != "" {
		if clients, err = server.NewClientCAs(server.ClientCAsConfig{CAFile: o.clientCA, CRLFile: o.clientCRL, Log: log, Audit: n.audit}); err != nil {
			return fail(exitUsage, err.Error(), "--tls-client-ca takes a PEM bundle of CA certificates, --tls-client-crl a CRL signed by one of them")
		}
		go clients.Watch(ctx, 5*time.Second)
	}
	// SIGHUP reloads the certificate and the device CAs and CRL now (they
	// are also polled); it must not reach the NotifyContext, which stops.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				certs.reload()
				if clients != nil {
					clients.Reload()
				}
			}
		}
	}()

	signer, _, err := n.auditSigner(ctx)
	if err != nil {
		return fmt.Errorf("audit signing key: %w", err)
	}
	var witnesses []audit.Witness
	if o.witness != "" {
		witnesses = append(witnesses, &audit.FileWitness{Path: o.witness})
	}
	alerts, detector, err := n.detectorJob(ctx, o.alerting, o.syslogCA, log) // the live detector: alerts within seconds
	if err != nil {
		return err
	}
	syslogSink, err := n.syslogJob(o.syslog, o.syslogCA, log) // follows the audit log from its stored cursor
	if err != nil {
		return err
	}
	backups, err := o.backup.job(o.data, log)
	if err != nil {
		return err
	}
	// Cluster-wide jobs run on one node at a time (see leader.go).
	stopJobs := leadJobs(ctx, electorFor(n.db, time.Second, log), log, checkpointJob(signer, witnesses, log), detector, syslogSink, backups)
	defer stopJobs()

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fail(exitFail, "cannot listen on "+o.listen+": "+err.Error(), "pick another address with --listen")
	}
	base := "https://" + publicHost(ln.Addr(), o.listen)
	o.alerting.setBase(base) // for the case links in alert emails
	metrics := server.NewMetrics()
	o.backup.registerMetrics(metrics.Registry())
	api := n.api(base + "/fhir")
	defer api.Close() // stops bulk export jobs and removes their output
	api.Alerts = alerts
	acc, err := n.openAccess(ctx, base, log, o.ssoConfig)
	if err != nil {
		ln.Close()
		return err
	}
	// Account changes and erasures made on other nodes, at once.
	defer watchChanges(ctx, n, acc.accounts, log)()
	if clients != nil {
		// Devices reach the FHIR API with their client certificate (role
		// device; the policy lets them submit observations only).
		acc.routes["/device/fhir/"] = clients.RequireClientCert(http.StripPrefix("/device", api.Handler()))
	}
	h := n.gate(server.Handler(server.Config{FHIR: api.Handler(), Auth: acc.auth, Sessions: acc.sessions, Routes: acc.routes, Audit: n.audit, Log: log, Metrics: metrics}))
	srv := server.NewHTTPServer(h, log)
	srv.TLSConfig = server.NewTLSConfig(certs.source(), clients)

	adminLn, err := server.ListenAdmin(filepath.Join(o.data, server.SocketName))
	if err != nil {
		ln.Close()
		return fmt.Errorf("admin socket: %w", err)
	}
	admin := server.NewHTTPServer(server.AdminHandler(n.adminMux(api.Handler(), acc)), log)
	admin.ConnContext = server.AdminConnContext
	stopHTTP01, err := certs.start(ctx, ln)
	if err != nil {
		ln.Close()
		adminLn.Close()
		return err
	}
	defer stopHTTP01()

	errc := make(chan error, 2)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	go func() { errc <- admin.Serve(adminLn) }()
	log.Info("serving", "url", base+"/fhir", "admin_socket", filepath.Join(o.data, server.SocketName))
	if o.ready != nil {
		o.ready(base)
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	log.Info("shutting down")
	server.Shutdown(admin, 10*time.Second)
	err = server.Shutdown(srv, 20*time.Second)
	os.Remove(filepath.Join(o.data, server.SocketName))
	return err
}

// adminMux is the admin socket's routes: the FHIR API as the local
// operator, tokens, accounts, SMART clients, the policy set, seal and keys.
func (n *node) adminMux(api http.Handler, acc *access) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/fhir/", n.gate(api))
	mux.Handle("/fhir", n.gate(api))
	mux.HandleFunc("POST /admin/token", n.adminTokenHandler(acc.accounts))
	mux.Handle("POST /admin/accounts", accountsAdminHandler(acc.accounts, n.audit))
	n.adminClientRoutes(mux, acc.smart.Clients())
	mux.HandleFunc("POST /admin/policy", n.adminPolicyHandler)
	mux.HandleFunc("GET /admin/policy", n.adminPolicyShowHandler)
	mux.HandleFunc("POST /admin/backup/drill", n.adminDrillHandler) // restore_drill_record.go
	mux.HandleFunc("POST /admin/patient/{op}", n.adminPatientHandler)
	mux.HandleFunc("POST /admin/reindex", n.adminReindexHandler)
	n.adminSealRoutes(mux) // seal, unseal, keys rotate/status/retire
	return mux
}

// publicHost names the listener for URLs: the host given, or localhost
// for a wildcard address.
func publicHost(addr net.Addr, listen string) string {
	host, _, _ := net.SplitHostPort(listen)
	_, port, _ := net.SplitHostPort(addr.String())
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
