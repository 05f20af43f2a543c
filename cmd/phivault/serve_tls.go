package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/server"
)

// acmeOptions are serve's ACME flags.
type acmeOptions struct {
	hosts, email, directory, caRoots, httpAddr string
}

func (a *acmeOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&a.hosts, "acme-host", "", "obtain the TLS certificate from an ACME CA (Let's Encrypt by default) for these public host names, comma-separated; instead of --tls-cert (see docs/tls.md)")
	fs.StringVar(&a.email, "acme-email", "", "contact e-mail given to the ACME CA (required with --acme-host)")
	fs.StringVar(&a.directory, "acme-directory", "", "ACME directory URL (https); default: Let's Encrypt production")
	fs.StringVar(&a.caRoots, "acme-ca-roots", "", "CA bundle (PEM) that verifies the ACME directory's HTTPS certificate (a private CA); default: the system roots")
	fs.StringVar(&a.httpAddr, "acme-http", "", "also answer HTTP-01 challenges on this plain-HTTP address (normally :80); other requests there are redirected to HTTPS")
}

// check reports a usage error for contradictory certificate flags.
func (a *acmeOptions) check(o *serveOptions) error {
	if a.hosts == "" {
		if a.email != "" || a.directory != "" || a.caRoots != "" || a.httpAddr != "" {
			return fail(exitUsage, "--acme-email, --acme-directory, --acme-ca-roots and --acme-http need --acme-host", "name the public host names: --acme-host ehr.example.org")
		}
		return nil
	}
	if o.certFile != "" || o.keyFile != "" {
		return fail(exitUsage, "--acme-host and --tls-cert/--tls-key are mutually exclusive", "use ACME for public host names, or certificate files from your own CA, not both")
	}
	if a.email == "" {
		return fail(exitUsage, "--acme-host needs --acme-email", "the CA sends expiry and revocation notices there: --acme-email ops@example.org")
	}
	return nil
}

// certSource is the listener's certificate: files (reloaded on change) or
// ACME, with OCSP stapling in front of either.
type certSource struct {
	files *server.CertReloader // nil with ACME
	acme  *server.ACME         // nil with files
	ocsp  *server.OCSPStapler
	hosts []string
	o     acmeOptions
	log   *slog.Logger
}

// openCertSource loads the certificate files (the development pair when
// none are given) or prepares ACME, and starts the background reloads.
func openCertSource(ctx context.Context, o serveOptions, log *slog.Logger) (*certSource, error) {
	cs := &certSource{o: o.acme, log: log}
	if o.acme.hosts != "" {
		cfg := server.ACMEConfig{Email: o.acme.email, DirectoryURL: o.acme.directory,
			CacheDir: filepath.Join(o.data, tlsDirName, "acme"), Log: log}
		for _, h := range strings.Split(o.acme.hosts, ",") {
			cfg.Hosts = append(cfg.Hosts, strings.TrimSpace(h))
		}
		if o.acme.caRoots != "" {
			pool, err := server.LoadCertPool(o.acme.caRoots)
			if err != nil {
				return nil, fail(exitUsage, "cannot load --acme-ca-roots: "+err.Error(), "give a PEM file of CA certificates")
			}
			cfg.CARoots = pool
		}
		a, err := server.NewACME(cfg)
		if err != nil {
			return nil, fail(exitUsage, strings.ReplaceAll(err.Error(), "\n", "; "), "--acme-host takes public DNS names, comma-separated, e.g. ehr.example.org,api.example.org")
		}
		cs.acme, cs.hosts = a, cfg.Hosts
		cs.ocsp = server.NewOCSPStapler(a, log)
	} else {
		certFile, keyFile := o.certFile, o.keyFile
		if certFile == "" && keyFile == "" {
			dir := filepath.Join(o.data, tlsDirName)
			_, created, err := server.DevCertificate(dir)
			if err != nil {
				return nil, err
			}
			certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
			log.Warn("using a SELF-SIGNED development TLS certificate; configure --tls-cert and --tls-key (or --acme-host) for production",
				"cert", certFile, "created", created)
		}
		certs, err := server.NewCertReloader(certFile, keyFile, log)
		if err != nil {
			return nil, fail(exitUsage, "cannot load the TLS certificate: "+err.Error(), "--tls-cert and --tls-key take PEM files")
		}
		go certs.Watch(ctx, 5*time.Second)
		cs.files = certs
		cs.ocsp = server.NewOCSPStapler(certs, log)
	}
	go cs.ocsp.Run(ctx, time.Minute)
	return cs, nil
}

// source is what the TLS configuration serves.
func (cs *certSource) source() server.CertSource { return cs.ocsp }

// reload rereads the certificate files now (SIGHUP); ACME renews itself.
func (cs *certSource) reload() {
	if cs.files != nil {
		cs.files.Reload() // failures are logged; the old certificate stays
	}
}

// start runs once the listener accepts connections (the CA validates
// through it): ACME orders or loads the certificates and serves HTTP-01
// when asked; then the OCSP responses are fetched. It returns a function
// that stops the HTTP-01 listener.
func (cs *certSource) start(ctx context.Context, ln net.Listener) (stop func(), err error) {
	stop = func() {}
	if cs.acme != nil && cs.o.httpAddr != "" {
		hl, err := net.Listen("tcp", cs.o.httpAddr)
		if err != nil {
			return stop, fail(exitFail, "cannot listen on "+cs.o.httpAddr+" for HTTP-01: "+err.Error(), "pick another address with --acme-http, or leave it out to use TLS-ALPN-01 only")
		}
		port := 443
		if _, p, err := net.SplitHostPort(ln.Addr().String()); err == nil {
			port, _ = strconv.Atoi(p)
		}
		hs := server.NewHTTPServer(cs.acme.HTTPHandler(port), cs.log)
		go func() {
			if err := hs.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				cs.log.Error("HTTP-01 listener stopped", "err", err.Error())
			}
		}()
		stop = func() { server.Shutdown(hs, 5*time.Second) }
	}
	go func() {
		if cs.acme != nil {
			cs.acme.Prefetch(ctx) // logged inside; handshakes retry
		}
		cs.ocsp.Prefetch(ctx, cs.hosts...) // logged inside; Run retries
	}()
	return stop, nil
}
