package server

import (
	"net/http"
	"strings"
)

// corsFHIR opens the FHIR API to browser apps on other origins (SMART on
// FHIR public clients call it from the browser with a bearer token). Any
// origin is allowed, without credentials: browsers then never send or
// expose a cookie-authenticated request across origins (the console
// session cookie is also SameSite=Strict), so a bearer token remains the
// only way in. A preflight (OPTIONS with Access-Control-Request-Method)
// is answered here, before authentication: it carries no credentials and
// reads no data. Requests without an Origin header are passed on as they
// are.
func corsFHIR(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", strings.Join(corsMethods, ", "))
			h.Set("Access-Control-Allow-Headers", strings.Join(corsHeaders, ", "))
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", "Location, Content-Location, ETag, Last-Modified, WWW-Authenticate")
		next.ServeHTTP(w, r)
	})
}

var (
	corsMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
	// corsHeaders are the request headers the FHIR API reads.
	corsHeaders = []string{"Authorization", "Content-Type", "Content-Encoding", "Accept", "Prefer",
		"If-Match", "If-None-Exist", "X-Purpose-Of-Use"}
)
