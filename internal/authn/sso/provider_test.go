package sso

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/authn/account"
)

// The OpenID provider in these tests is zitadel/oidc's provider (pkg/op)
// with the example storage and login UI from the same module, served over
// TLS. testStorage adds what the example lacks: a groups claim in the ID
// token and per-user "amr" values.

const testPassword = "correct horse battery staple"

// idpUser is a user at the provider.
type idpUser struct {
	storage.User
	groups []string
	amr    []string
}

// idpUsers implements storage.UserStore over a fixed table; groups can be
// changed while the provider runs.
type idpUsers struct {
	mu    sync.Mutex
	users map[string]*idpUser // by subject
}

func (u *idpUsers) GetUserByID(id string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	if x, ok := u.users[id]; ok {
		c := x.User
		return &c
	}
	return nil
}

func (u *idpUsers) GetUserByUsername(name string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, x := range u.users {
		if x.Username == name {
			c := x.User
			return &c
		}
	}
	return nil
}

func (u *idpUsers) ExampleClientID() string { return storage.ServiceUserID }

func (u *idpUsers) get(id string) (groups, amr []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if x, ok := u.users[id]; ok {
		return slices.Clone(x.groups), slices.Clone(x.amr)
	}
	return nil, nil
}

func (u *idpUsers) setGroups(id string, groups []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.users[id].groups = groups
}

// testStorage is the example storage with groups and amr.
type testStorage struct {
	*storage.Storage
	users *idpUsers
}

// amrRequest overrides the example's fixed "pwd".
type amrRequest struct {
	*storage.AuthRequest
	amr []string
}

func (a amrRequest) GetAMR() []string { return a.amr }

func (s testStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	req, err := s.Storage.AuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	ar, ok := req.(*storage.AuthRequest)
	if !ok {
		return nil, errors.New("unexpected auth request type")
	}
	_, amr := s.users.get(ar.GetSubject())
	return amrRequest{AuthRequest: ar, amr: amr}, nil
}

func (s testStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	u := s.users.GetUserByID(req.GetSubject())
	if u == nil {
		return errors.New("no such user")
	}
	groups, _ := s.users.get(req.GetSubject())
	// The example releases profile claims in the ID token only without an
	// access token; many providers do release them, so add them here.
	ui.Name = u.FirstName + " " + u.LastName
	ui.PreferredUsername = u.Username
	if groups != nil {
		ui.AppendClaims("groups", groups)
	}
	return nil
}

// testIDP is a running provider.
type testIDP struct {
	srv   *httptest.Server
	users *idpUsers
}

// lazyHandler lets a TLS server start (and so learn its URL) before the
// handler that needs the URL exists.
type lazyHandler struct{ h atomic.Pointer[http.Handler] }

func (l *lazyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := l.h.Load()
	if h == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}

func (l *lazyHandler) set(h http.Handler) { l.h.Store(&h) }

// startIDP starts the provider with the given clients (id -> redirect URL;
// the secret is "secret-"+id) and users.
func startIDP(t testing.TB, clients map[string]string, users ...*idpUser) *testIDP {
	t.Helper()
	lh := &lazyHandler{}
	srv := httptest.NewTLSServer(lh)
	t.Cleanup(srv.Close)
	us := &idpUsers{users: map[string]*idpUser{}}
	for _, u := range users {
		u.Password = testPassword
		u.EmailVerified = true
		u.PreferredLanguage = language.English
		us.users[u.ID] = u
	}
	cs := map[string]*storage.Client{}
	for id, redirect := range clients {
		cs[id] = storage.WebClient(id, "secret-"+id, redirect)
	}
	st := testStorage{Storage: storage.NewStorageWithClients(us, cs), users: us}
	lh.set(exampleop.SetupServer(srv.URL, st, nil, false))
	return &testIDP{srv: srv, users: us}
}

// memAccounts is an in-memory account directory.
type memAccounts struct {
	mu sync.Mutex
	m  map[string]account.Account
}

var _ Accounts = (*memAccounts)(nil)

func (a *memAccounts) Get(_ context.Context, id string) (account.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	x, ok := a.m[id]
	if !ok {
		return account.Account{}, account.ErrNotFound
	}
	return x, nil
}

func (a *memAccounts) CreateExternal(_ context.Context, x account.Account, _ string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]account.Account{}
	}
	if _, ok := a.m[x.ID]; ok {
		return account.ErrExists
	}
	a.m[x.ID] = x
	return nil
}

func (a *memAccounts) SetRoles(_ context.Context, id string, roles []string, _ string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	x, ok := a.m[id]
	if !ok {
		return account.ErrNotFound
	}
	x.Roles = slices.Clone(roles)
	a.m[id] = x
	return nil
}

// session is one started console session.
type session struct {
	User, Method string
	MFA          bool
}

// memSessions records started sessions and sets a cookie.
type memSessions struct {
	mu   sync.Mutex
	list []session
}

func (s *memSessions) Start(w http.ResponseWriter, _ *http.Request, user, method string, mfa bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, session{user, method, mfa})
	http.SetCookie(w, &http.Cookie{Name: "sid", Value: "session-for-test", Path: "/", Secure: true, HttpOnly: true})
	return nil
}

func (s *memSessions) all() []session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.list)
}

// memAudit records events; fail makes Record fail.
type memAudit struct {
	mu     sync.Mutex
	events []audit.Event
	fail   bool
}

func (a *memAudit) Record(_ context.Context, e *audit.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		return audit.ErrUnavailable
	}
	a.events = append(a.events, *e)
	return nil
}

func (a *memAudit) all() []audit.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events)
}
