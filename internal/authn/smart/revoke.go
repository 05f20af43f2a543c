package smart

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// refreshRec is a stored refresh token (named by its hash). Used marks a
// rotated token: presenting it again revokes the whole family.
type refreshRec struct {
	Grant grant `json:"grant"`
	Used  bool  `json:"used,omitempty"`
}

type revokedRec struct {
	Until time.Time `json:"until"` // the entry can be forgotten after this
}

// revokedReload is how stale this node's view of revocations made on
// other nodes may be.
const revokedReload = 2 * time.Second

func (s *Server) loadRevoked(ctx context.Context) error {
	recs, err := list[revokedRec](ctx, s.v, prefixRevoked)
	if err != nil {
		return err
	}
	m := make(map[string]time.Time, len(recs))
	for k, r := range recs {
		m[strings.TrimPrefix(k, prefixRevoked)] = r.Until
	}
	now := s.c.Now()
	s.mu.Lock()
	// Keep what this node revoked while the store was being read.
	for k, until := range s.revoked {
		if _, ok := m[k]; !ok && now.Before(until) {
			m[k] = until
		}
	}
	s.revoked, s.revokedLoad = m, now
	s.mu.Unlock()
	return nil
}

// isRevoked reports whether the token jti or its family sid is revoked.
// On a store error it says yes (fail closed).
func (s *Server) isRevoked(ctx context.Context, jti, sid string) bool {
	s.mu.Lock()
	stale := s.c.Now().Sub(s.revokedLoad) > revokedReload
	if stale {
		s.revokedLoad = s.c.Now() // one caller reloads; the others use what is known
	}
	s.mu.Unlock()
	if stale && s.loadRevoked(ctx) != nil {
		s.mu.Lock()
		s.revokedLoad = time.Time{} // retry at the next check
		s.mu.Unlock()
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, a := s.revoked[jti]
	_, b := s.revoked["sid:"+sid]
	return a || b
}

// revokeID records a revoked jti, or a family as "sid:"+sid, until the
// last token it could cover has expired.
func (s *Server) revokeID(ctx context.Context, id string, until time.Time) error {
	if err := s.v.put(ctx, prefixRevoked+id, revokedRec{Until: until}, false); err != nil {
		return err
	}
	s.mu.Lock()
	s.revoked[id] = until
	s.mu.Unlock()
	return nil
}

// revokeFamily ends every access and refresh token of a family.
func (s *Server) revokeFamily(ctx context.Context, sid string, familyExpires time.Time) error {
	until := s.c.Now().Add(s.c.AccessTTL + 2*leeway)
	if familyExpires.After(until) {
		until = familyExpires
	}
	return s.revokeID(ctx, "sid:"+sid, until)
}

// revoke serves POST /oauth/revoke (RFC 7009). The caller authenticates
// as a client (public clients by client_id); a token of another client,
// or an unknown one, is answered 200 and left alone.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	cl, ok := s.authClient(w, r, true)
	if !ok {
		return
	}
	tok := r.PostForm.Get("token")
	ctx := r.Context()
	var rec refreshRec
	err := s.v.get(ctx, hashName(prefixRefresh, tok), &rec)
	switch {
	case err == nil:
		if rec.Grant.ClientID == cl.ID {
			err = s.revokeFamily(ctx, rec.Grant.SID, rec.Grant.Expires)
		}
	case notFound(err):
		err = nil
		if c, verr := s.verify(ctx, tok); verr == nil && c.ClientID == cl.ID {
			err = s.revokeID(ctx, c.ID, c.Expiry.Time().Add(leeway))
		}
	}
	if err == nil {
		err = s.record(r, "token-revoke", "revoke", true, "", grant{ClientID: cl.ID})
	}
	if err != nil {
		s.unavailable(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// introspect serves POST /oauth/introspect (RFC 7662) for authenticated
// confidential and backend clients; a client sees only its own tokens
// (anything else is {"active": false}).
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	cl, ok := s.authClient(w, r, false)
	if !ok {
		return
	}
	ctx := r.Context()
	tok := r.PostForm.Get("token")
	inactive := map[string]any{"active": false}
	if c, err := s.verify(ctx, tok); err == nil {
		if c.ClientID != cl.ID {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		if _, err := s.Check(tok); err != nil { // account disabled, client removed
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		out := map[string]any{"active": true, "scope": c.Scope, "client_id": c.ClientID, "sub": c.Subject, "token_type": "Bearer",
			"exp": c.Expiry.Time().Unix(), "iat": c.IssuedAt.Time().Unix(), "iss": c.Issuer, "aud": s.base, "jti": c.ID}
		if c.Patient != "" {
			out["patient"] = c.Patient
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	var rec refreshRec
	err := s.v.get(ctx, hashName(prefixRefresh, tok), &rec)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.c.Log.Error("smart: introspect", "err", err)
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
		return
	}
	g := rec.Grant
	if err != nil || rec.Used || g.ClientID != cl.ID || !s.c.Now().Before(g.Expires) || s.isRevoked(ctx, "", g.SID) {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	if _, err := s.c.Accounts.Valid(ctx, g.User, g.Epoch); err != nil {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"active": true, "scope": strings.Join(g.Scopes, " "), "client_id": g.ClientID,
		"sub": g.User, "token_type": "refresh_token", "exp": g.Expires.Unix()})
}
