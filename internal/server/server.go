// Package server wires phivault's HTTP side: TLS 1.3, HTTP/2, gzip,
// security headers, request limits and timeouts, bearer-token
// authentication, panic recovery, health and Prometheus metrics, structured
// request logs (route patterns and statuses, never URLs, bodies or
// tokens), graceful shutdown, and the owner-only admin socket.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/klauspost/compress/gzhttp"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/policy"
)

// Authenticator turns a bearer token into a principal.
type Authenticator interface {
	Check(token string) (policy.Principal, error)
}

// Sessions finds the signed-in console user of a browser request
// (session.Manager).
type Sessions interface {
	Principal(r *http.Request) (policy.Principal, bool)
}

// Config is what Handler needs.
type Config struct {
	FHIR http.Handler // the /fhir/ routes
	// Routes are further public routes by ServeMux pattern (login, console,
	// OAuth). They get the security headers, limits and metrics but no
	// bearer-token check: each authenticates its callers itself.
	Routes map[string]http.Handler
	Auth   Authenticator
	// Sessions, when set, lets a signed-in console user read the FHIR API
	// from the browser (GET and HEAD only: the session cookie is
	// SameSite=Strict, and nothing is changed without a bearer token).
	// This is how a break-the-glass window is used.
	Sessions Sessions
	Audit    *audit.Log
	Log      *slog.Logger
	Metrics  *Metrics
	// RequestTimeout bounds each request's work (default 60s).
	RequestTimeout time.Duration
}

// Handler returns the public HTTP handler.
func Handler(c Config) http.Handler {
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 60 * time.Second
	}
	mux := http.NewServeMux()
	route := func(pattern string, h http.Handler) { mux.Handle(pattern, secure(c, pattern, h)) }
	route("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	}))
	route("GET /metrics", c.Metrics.Handler())
	route("/fhir/", corsFHIR(authenticate(c, c.FHIR)))
	route("/fhir", corsFHIR(authenticate(c, c.FHIR)))
	for pattern, h := range c.Routes {
		route(pattern, h)
	}
	route("/", http.NotFoundHandler())
	return gzhttp.GzipHandler(mux)
}

// secure adds security headers, the request timeout, panic recovery,
// metrics and the request log.
func secure(c Config, route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h := w.Header()
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		ctx, cancel := context.WithTimeout(r.Context(), c.RequestTimeout)
		defer cancel()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				c.Log.Error("panic in request", "route", route, "method", r.Method)
				if sw.status == 0 {
					sw.Header().Set("Content-Type", "application/fhir+json")
					sw.WriteHeader(http.StatusInternalServerError)
					sw.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception","diagnostics":"internal error"}]}`))
				}
			}
			d := time.Since(start)
			c.Metrics.observe(r.Method, route, sw.status, d)
			c.Log.Debug("request", "method", r.Method, "route", route, "status", sw.status, "ms", d.Milliseconds())
		}()
		next.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// authenticate requires a valid bearer token. A failed attempt is audited
// (and must be, or the request fails with 503).
func authenticate(c Config, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.Sessions != nil && r.Header.Get("Authorization") == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if p, ok := c.Sessions.Principal(r); ok {
				next.ServeHTTP(w, r.WithContext(policy.WithPrincipal(r.Context(), p)))
				return
			}
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		p, err := c.Auth.Check(strings.TrimSpace(tok))
		if !ok || err != nil {
			ev := &audit.Event{Time: time.Now(), Interaction: "login-failed", Action: "E", Outcome: audit.MinorFailure,
				OutcomeDesc: "missing or invalid bearer token", SourceIP: hostOf(r.RemoteAddr), UserAgent: r.UserAgent(), Policies: []string{"authentication"}}
			status, msg := http.StatusUnauthorized, "a valid bearer token is required (Authorization: Bearer ...)"
			if err := c.Audit.Record(r.Context(), ev); err != nil {
				status, msg = http.StatusServiceUnavailable, "the audit log is unavailable"
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="phivault"`)
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(status)
			w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login","diagnostics":"` + msg + `"}]}`))
			return
		}
		next.ServeHTTP(w, r.WithContext(policy.WithPrincipal(r.Context(), p)))
	})
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// NewHTTPServer returns an http.Server with phivault's limits and timeouts.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// Shutdown stops srv gracefully, waiting up to grace for requests.
func Shutdown(srv *http.Server, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return srv.Close()
	}
	return err
}
