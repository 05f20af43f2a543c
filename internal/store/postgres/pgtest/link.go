package pgtest

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Link relays connections between clients and the throwaway server over a
// unix socket of its own: it stands for the network between one node and
// the database. Cut makes it silent both ways, as a switch or firewall
// that drops a node's packets: bytes are held rather than refused, and no
// close passes either way, so neither side learns of the cut from the
// connection itself. Heal lets everything held through.
type Link struct {
	ln    net.Listener
	mu    sync.Mutex
	cond  *sync.Cond
	cut   bool
	done  bool
	conns []net.Conn
	wg    sync.WaitGroup
}

// NewLink starts a Link to the throwaway server and returns it with dsn
// (a DSN of that server, from DSN or AdminDSN) rewritten to connect
// through it. The Link closes when t ends. It skips when the server was
// given by PHIVAULT_TEST_PG: only a local socket can be relayed.
func NewLink(t testing.TB, dsn string) (*Link, string) {
	t.Helper()
	AdminDSN(t)
	if dir == "" {
		t.Skipf("pgtest: the server from %s cannot be reached through a link", EnvDSN)
	}
	ldir, err := os.MkdirTemp("", "phivault-pglink-")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(ldir, ".s.PGSQL."+socketPort))
	if err != nil {
		os.RemoveAll(ldir)
		t.Fatal(err)
	}
	l := &Link{ln: ln}
	l.cond = sync.NewCond(&l.mu)
	l.wg.Add(1)
	go l.accept(filepath.Join(dir, ".s.PGSQL."+socketPort))
	t.Cleanup(func() {
		l.close()
		os.RemoveAll(ldir)
	})
	return l, WithParam(dsn, "host", ldir)
}

// Cut makes the link silent until Heal.
func (l *Link) Cut() { l.set(true) }

// Heal ends a Cut: what was held passes, in order.
func (l *Link) Heal() { l.set(false) }

func (l *Link) set(cut bool) {
	l.mu.Lock()
	l.cut = cut
	l.cond.Broadcast()
	l.mu.Unlock()
}

// pass blocks while the link is cut; it reports false once it is closed.
func (l *Link) pass() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.cut && !l.done {
		l.cond.Wait()
	}
	return !l.done
}

func (l *Link) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		c.Close()
		return false
	}
	l.conns = append(l.conns, c)
	return true
}

func (l *Link) accept(server string) {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		if !l.track(c) {
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			// A connection made during a cut reaches nothing until Heal.
			if !l.pass() {
				return
			}
			s, err := net.Dial("unix", server)
			if err != nil || !l.track(s) {
				c.Close()
				return
			}
			l.wg.Add(2)
			go l.pipe(s, c)
			go l.pipe(c, s)
		}()
	}
}

// pipe copies src to dst while the link passes; when src ends, dst is
// closed too, but only once the link passes (a cut hides the close).
func (l *Link) pipe(dst, src net.Conn) {
	defer l.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !l.pass() {
				break
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if l.pass() {
		dst.Close()
		src.Close()
	}
}

func (l *Link) close() {
	l.ln.Close()
	l.mu.Lock()
	l.done = true
	l.cond.Broadcast()
	for _, c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}
