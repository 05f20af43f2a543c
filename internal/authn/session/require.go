package session

import (
	"net/http"

	"github.com/phivault/phivault/internal/policy"
)

// Require wraps a console handler that needs a signed-in user: the
// principal is put in the request context (policy.PrincipalFrom), and every
// request that is not GET, HEAD or OPTIONS must pass Check. Without a
// session a GET is redirected to /login and anything else gets 401; a
// failed Check gets 403. Handlers behind it never see an anonymous or
// cross-site caller.
func (m *Manager) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if err := m.Check(r); err != nil {
				http.Error(w, "cross-site request refused: reload the page and try again", http.StatusForbidden)
				return
			}
		}
		p, ok := m.Principal(r)
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "sign in first", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(policy.WithPrincipal(r.Context(), p)))
	})
}
