// Package pgtest gives tests a PostgreSQL database of their own: a new,
// empty schema in the server named by PHIVAULT_TEST_PG (a DSN), or else in
// a throwaway server it starts itself from the binaries under
// /usr/lib/postgresql/*/bin (Debian's postgresql package), listening on a
// unix socket in a temporary directory only.
//
// Without either, tests skip with a message; with CI=true they fail, so a
// CI that lost its PostgreSQL cannot pass silently. A package whose tests
// use pgtest stops the throwaway server from TestMain:
//
//	func TestMain(m *testing.M) { code := m.Run(); pgtest.Stop(); os.Exit(code) }
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable holding an existing server's DSN.
const EnvDSN = "PHIVAULT_TEST_PG"

// socketPort names the throwaway server's socket file; nothing listens on
// TCP.
const socketPort = "5432"

var (
	once     sync.Once
	adminDSN string // superuser (throwaway server) or the given DSN
	dir      string // the throwaway server's directory, "" if none
	binDir   string // its binaries
	run      []string
	startErr error
)

// AdminDSN returns the DSN of the server's administrative connection: the
// PHIVAULT_TEST_PG value, or the throwaway server's superuser "phivault".
func AdminDSN(t testing.TB) string {
	t.Helper()
	once.Do(start)
	if startErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: no PostgreSQL (CI=true makes this a failure): %v", startErr)
		}
		t.Skipf("pgtest: no PostgreSQL, skipping: %v (set %s to a DSN, or install postgresql)", startErr, EnvDSN)
	}
	return adminDSN
}

// DSN creates a new, empty schema, dropped when t ends, and returns a DSN
// whose search_path selects it.
func DSN(t testing.TB) string {
	t.Helper()
	return SchemaIn(t, AdminDSN(t))
}

// SchemaIn is DSN for the database that admin (a DSN from AdminDSN, maybe
// with another dbname) connects to.
func SchemaIn(t testing.TB, admin string) string {
	t.Helper()
	schema := "t_" + randHex()
	Exec(t, admin, "CREATE SCHEMA "+schema)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			t.Errorf("pgtest: drop schema: %v", err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema: %v", err)
		}
	})
	return WithParam(admin, "search_path", schema)
}

// WithParam adds a connection parameter (a run-time setting such as
// search_path or role) to dsn, in URL or key=value form.
func WithParam(dsn, key, value string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			q.Set(key, value)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " " + key + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(value) + "'"
}

// Exec runs sql statements on a new connection to dsn, failing t on error.
func Exec(t testing.TB, dsn string, sqls ...string) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer c.Close(context.Background())
	for _, s := range sqls {
		if _, err := c.Exec(context.Background(), s); err != nil {
			t.Fatalf("pgtest: %s: %v", s, err)
		}
	}
}

func randHex() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// start finds a server: the DSN from the environment or a throwaway one.
func start() {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		adminDSN = dsn
		return
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		startErr = errors.New("no " + EnvDSN + " and no initdb under /usr/lib/postgresql/*/bin")
		return
	}
	// The newest major version.
	slices.SortFunc(bins, func(a, b string) int { return version(a) - version(b) })
	binDir = filepath.Dir(bins[len(bins)-1])
	if startErr = startServer(binDir); startErr != nil && dir != "" {
		_ = os.RemoveAll(dir)
		dir = ""
	}
}

func version(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

func startServer(bin string) error {
	var err error
	if dir, err = os.MkdirTemp("", "phivault-pg-"); err != nil {
		return err
	}
	// PostgreSQL refuses to run as root: as root, run it as postgres.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root and no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return err
		}
		run = []string{"runuser", "-u", "postgres", "--"}
	}
	data := filepath.Join(dir, "data")
	port := socketPort
	if err := command(filepath.Join(bin, "initdb"), "-D", data, "-U", "phivault", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		return err
	}
	if err := command(filepath.Join(bin, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "log"), "-w",
		"-o", "-k "+dir+" -p "+port+" -c listen_addresses=''", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		return fmt.Errorf("%w\n%s", err, log)
	}
	adminDSN = fmt.Sprintf("host=%s port=%s user=phivault dbname=postgres sslmode=disable", dir, port)
	return nil
}

func command(name string, args ...string) error {
	argv := append(append(slices.Clone(run), name), args...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", filepath.Base(name), err, out)
	}
	return nil
}

// Stop stops the throwaway server, if one was started, and removes its
// files.
func Stop() {
	if dir == "" {
		return
	}
	if err := command(filepath.Join(binDir, "pg_ctl"), "-D", filepath.Join(dir, "data"), "-m", "fast", "-w", "stop"); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: stop the throwaway server: %v\n", err)
	}
	_ = os.RemoveAll(dir)
	dir = ""
}
