package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"

	"github.com/phivault/phivault/internal/policy"
)

// SocketName is the admin socket's file name inside the data directory.
const SocketName = "admin.sock"

type peerKey struct{}

// ListenAdmin opens the owner-only admin socket at path (mode 0600, stale
// socket file replaced). The socket is made under a temporary name,
// restricted, then renamed into place, so that path never exists with a
// wider mode, not even for an instant. Closing the listener removes path.
func ListenAdmin(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	tmp := path + ".tmp-" + strconv.Itoa(os.Getpid())
	_ = os.Remove(tmp)
	l, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, err
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // the name it would unlink is gone after the rename
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, err
	}
	return &adminListener{UnixListener: ul, path: path}, nil
}

// adminListener removes the socket file when closed.
type adminListener struct {
	*net.UnixListener
	path string
}

func (l *adminListener) Close() error {
	err := l.UnixListener.Close()
	if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

// AdminHandler serves operator requests on the admin socket. Only a peer
// running as the server's own user (or root) is accepted; it acts as the
// operator principal (the operator role), and everything it does
// is decided and audited like any other request.
func AdminHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uid, ok := r.Context().Value(peerKey{}).(int)
		if !ok || (uid != os.Getuid() && uid != 0) {
			http.Error(w, "forbidden: the admin socket accepts only the server's own user", http.StatusForbidden)
			return
		}
		p := policy.Principal{UserID: "operator:uid-" + strconv.Itoa(uid), Roles: []string{"operator"}, Method: "admin-socket"}
		next.ServeHTTP(w, r.WithContext(policy.WithPrincipal(r.Context(), p)))
	})
}

// AdminConnContext records the peer's uid (SO_PEERCRED) for AdminHandler;
// set it as the admin http.Server's ConnContext.
func AdminConnContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *syscall.Ucred
	var cerr error
	err = raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil || cerr != nil || cred == nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, int(cred.Uid))
}

// AdminClient returns an HTTP client that talks to the admin socket at
// path; requests go to http://phivault/...
func AdminClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", path)
			if err != nil {
				return nil, fmt.Errorf("admin socket: %w", err)
			}
			return c, nil
		},
	}}
}
