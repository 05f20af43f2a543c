// Package fhirapi serves the FHIR R4 REST API (JSON) over records. Every
// interaction follows one path: parse and validate the request (bad input:
// 4xx OperationOutcome, nothing stored), ask the policy decision point,
// read or write through records, append the audit event (durably, before
// any data leaves; a write and its event commit together), then answer.
package fhirapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

// Searcher answers FHIR search queries (internal/search).
type Searcher interface {
	// Find returns the ids of current resources of typ that match query, in
	// a stable order, at most limit (0: no limit). Errors for bad queries
	// are *Error values with a 400 status. check, when not nil, is a token
	// query that gives the same answer, for re-checking inside a
	// transaction.
	Find(ctx context.Context, typ string, query url.Values, limit int) (ids []string, check *store.MatchQuery, err error)
}

// Indexer names the patient compartment of a resource (records.Indexer).
type Indexer = records.Indexer

// Config configures an API.
type Config struct {
	Records *records.Store
	Search  Searcher
	Policy  policy.Decider
	Audit   *audit.Log
	Log     *slog.Logger
	Base    string // public base URL of the FHIR endpoint, e.g. https://localhost:8443/fhir
	Version string // software version for /metadata
	// MaxBundleEntries bounds batch and transaction bundles.
	MaxBundleEntries int
	// Alerts, when set, serves the live detector's alerts under /fhir/_alerts.
	Alerts Alerts
	// Export configures bulk export ($export); off unless Export.Barrier is set.
	Export ExportConfig
}

// API is the FHIR REST handler set.
type API struct {
	Config
	started time.Time
	exports *exportManager
	labels  labelMemo
}

// New returns an API; mount Handler under /fhir/.
func New(c Config) *API {
	if c.MaxBundleEntries == 0 {
		c.MaxBundleEntries = 10_000
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return &API{Config: c, started: time.Now(), exports: newExportManager(c.Export)}
}

// Handler returns the routes, rooted at /fhir.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, fn func(*call) error) { mux.Handle(pattern, a.wrap(fn)) }
	h("GET /fhir/metadata", a.capabilities)
	h("POST /fhir", a.bundle)
	h("POST /fhir/{$}", a.bundle)
	h("GET /fhir/_history", a.history)
	h("GET /fhir/{type}", a.search)
	h("POST /fhir/{type}/_search", a.search)
	h("POST /fhir/{type}", a.create)
	h("PUT /fhir/{type}", a.conditionalUpdate)
	h("DELETE /fhir/{type}", a.conditionalDelete)
	h("GET /fhir/{type}/_history", a.history)
	h("GET /fhir/{type}/{id}", a.read)
	h("PUT /fhir/{type}/{id}", a.update)
	h("PATCH /fhir/{type}/{id}", a.patch)
	h("DELETE /fhir/{type}/{id}", a.delete)
	h("GET /fhir/{type}/{id}/_history", a.history)
	h("GET /fhir/{type}/{id}/_history/{vid}", a.vread)
	a.auditRoutes(h)
	a.alertRoutes(h)
	a.caseRoutes(h)
	a.exportRoutes(h)
	a.everythingRoutes(h)
	mux.Handle("/fhir/", a.wrap(func(c *call) error {
		if allow := allowedMethods(mux, c.r); len(allow) > 0 {
			c.w.Header().Set("Allow", strings.Join(allow, ", "))
			return errorf(http.StatusMethodNotAllowed, "not-supported", "this endpoint does not support the method "+c.r.Method)
		}
		return errorf(http.StatusNotFound, "not-supported", "no such FHIR endpoint or interaction")
	}))
	return mux
}

// allowedMethods returns the methods that have a route for r's path, for
// a 405 answer to a method that has none.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allow []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pattern := mux.Handler(r2); pattern != "" && pattern != "/fhir/" {
			allow = append(allow, m)
		}
	}
	return allow
}

// call is one request in flight.
type call struct {
	w   http.ResponseWriter
	r   *http.Request
	ctx context.Context
	who policy.Principal
	ev  audit.Event // the audit event being built
}

// wrap turns an interaction into a handler: it requires a principal,
// converts errors to OperationOutcomes, and guarantees that every request
// that reached an interaction leaves an audit event (denials and client
// errors too). Success responses are written by the interaction itself
// after its event was recorded.
func (a *API) wrap(fn func(*call) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := policy.PrincipalFrom(r.Context())
		if !ok {
			writeOutcome(w, errorf(http.StatusUnauthorized, "login", "authentication required"))
			return
		}
		c := &call{w: w, r: r, ctx: r.Context(), who: p}
		c.ev = audit.Event{
			Time: time.Now(), UserID: p.UserID, Roles: p.Roles, ClientID: p.ClientID,
			SourceIP: clientIP(r), UserAgent: r.UserAgent(), AuthMethod: p.Method,
			Outcome: audit.Success, Allowed: true,
		}
		c.ev.Purpose = c.purpose()
		var err error
		if p.UserID == "" {
			// A credential that names no user (a token without a user
			// claim) is denied everything here, before any policy runs.
			c.ev.Allowed = false
			err = errorf(http.StatusForbidden, "forbidden", "access denied: the credential names no user")
		} else if fe := notAcceptable(r); fe != nil {
			err = fe
		} else {
			err = fn(c)
		}
		if err == nil {
			return
		}
		var fe *Error
		if !errors.As(err, &fe) {
			switch {
			case errors.Is(err, barrier.ErrKeyDestroyed):
				fe = errorf(http.StatusGone, "deleted", "the data was erased (crypto-shredded)")
			case errors.Is(err, audit.ErrUnavailable):
				fe = errorf(http.StatusServiceUnavailable, "transient", "the audit log is unavailable; nothing was returned or changed")
			case errors.Is(err, store.ErrUnavailable):
				fe = errorf(http.StatusServiceUnavailable, "transient", "the database is unavailable; nothing was returned or changed")
			case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
				fe = errorf(http.StatusServiceUnavailable, "timeout", "the request took too long")
			default:
				a.Log.Error("fhir request failed", "method", r.Method, "route", r.Pattern, "err", err.Error())
				fe = errorf(http.StatusInternalServerError, "exception", "internal error")
			}
		}
		if !fe.audited && !errors.Is(err, audit.ErrUnavailable) {
			c.ev.Outcome = audit.MinorFailure
			if fe.Status >= 500 {
				c.ev.Outcome = audit.SeriousFail
			}
			c.ev.OutcomeDesc = fe.Msg
			// A failed request returned nothing: no entities. A denial
			// still names the patient whose record was asked for, so that
			// it appears in that patient's access report.
			c.ev.Entities = nil
			if fe.Status != http.StatusForbidden {
				c.ev.Patients = nil
			}
			if c.ev.Interaction == "" {
				c.ev.Interaction = "unknown"
			}
			if aerr := a.Audit.Record(c.ctx, &c.ev); aerr != nil {
				fe = errorf(http.StatusServiceUnavailable, "transient", "the audit log is unavailable")
			}
		}
		writeOutcome(w, fe)
	})
}

// decide asks the policy decision point and records the decision in the
// event; a denial is returned as a 403 error (audited by wrap).
func (a *API) decide(c *call, act policy.Action, typ, id, patient string) error {
	return a.decideRequest(c, policy.Request{Principal: c.who, Action: act, Type: typ, ID: id, Patient: patient, Purpose: c.purpose()})
}

// decideRequest is decide for a request built by the caller.
func (a *API) decideRequest(c *call, r policy.Request) error {
	d := a.Policy.Decide(c.ctx, r)
	c.ev.Policies = d.Policies
	if !d.Allow {
		c.ev.Allowed = false
		c.ev.Patients = appendPatient(c.ev.Patients, r.Patient)
		return errorf(http.StatusForbidden, "forbidden", "access denied: "+d.Reason)
	}
	return nil
}

// purpose is the purpose of use the caller declared (a header, for now),
// treatment by default.
func (c *call) purpose() string {
	if p := c.r.Header.Get("X-Purpose-Of-Use"); p != "" {
		return p
	}
	return "TREAT"
}

// record durably appends the call's event; data may be sent only after it
// returns nil.
func (a *API) record(c *call) error {
	return a.Audit.Record(c.ctx, &c.ev)
}

func clientIP(r *http.Request) string {
	host := r.RemoteAddr
	for i := len(host) - 1; i >= 0; i-- {
		if host[i] == ':' {
			return host[:i]
		}
	}
	return host
}
