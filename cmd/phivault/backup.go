package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"golang.org/x/mod/sumdb/note"

	"github.com/phivault/phivault/internal/audit"
	"github.com/phivault/phivault/internal/backup"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// backupKeysDir holds the write keys of the repositories this node backs
// up to (one JSON file per repository, mode 0600).
const (
	backupKeysDir    = "backup-keys"
	shreddedKeysName = "shredded-keys"
)

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func runBackup(args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) > 0 && args[0] == "create":
		return runBackupCreate(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "verify":
		return runBackupVerify(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "prune":
		return runBackupPrune(args[1:], stdout, stderr)
	}
	return fail(exitUsage, "backup needs a subcommand: create, verify or prune",
		"phivault backup create --data DIR --repo PATH --recipient age1...; phivault backup verify --repo PATH --identity FILE; phivault backup prune --repo PATH --identity FILE --keep-daily 7")
}

func runBackupCreate(args []string, stdout, stderr io.Writer) error {
	fs, data := newFlags("backup create", "--data DIR --repo PATH|s3://BUCKET/PREFIX [--recipient age1... ...] [--recipients-file FILE] [--identity FILE] [--s3-endpoint URL --s3-lock-days N]", stderr)
	repo := fs.String("repo", "", "backup repository: a directory, or s3://bucket/prefix (created on first use)")
	s3 := addS3Flags(fs, true)
	var recips multiFlag
	fs.Var(&recips, "recipient", "age X25519 recipient (age1...) to encrypt to; repeat for several (needed to create a repository)")
	recipFile := fs.String("recipients-file", "", "file of recipients, one per line (# comments)")
	identity := fs.String("identity", "", "a recipient's identity file, only to give this node the write key of an existing repository")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := needData(*data, "backup"); err != nil {
		return err
	}
	if *repo == "" {
		return fail(exitUsage, "no repository given", "pass --repo PATH")
	}
	if *recipFile != "" {
		rs, err := readLines(*recipFile)
		if err != nil {
			return fail(exitUsage, "cannot read the recipients file: "+err.Error(), "")
		}
		recips = append(recips, rs...)
	}
	rst, err := s3.storage(context.Background(), *repo, true)
	if err != nil {
		return err
	}
	r, err := openRepoIn(*data, rst, recips, *identity, stdout)
	if err != nil {
		return err
	}
	m, st, err := createSnapshot(context.Background(), *data, r)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "snapshot %s: %d files, %d chunks (%d new), %d bytes (%d new, ratio %.4f), %d bytes written\n",
		m.ID, st.Files, st.Chunks, st.NewChunks, st.Bytes, st.NewBytes, float64(st.NewBytes)/float64(max(st.Bytes, 1)), st.StoredBytes)
	fmt.Fprintf(stdout, "versions %d, audit tree size %d root %x\n", m.Counts["versions"], m.Audit.Size, m.Audit.Root)
	return recordErasures(context.Background(), *data, rst, stdout) // outside the snapshot, for restores of older ones
}

// openRepoForWrite is openRepoIn for a directory repository.
func openRepoForWrite(data, repo string, recips []string, identity string, stdout io.Writer) (*backup.Repo, error) {
	return openRepoIn(data, backup.Dir(repo), recips, identity, stdout)
}

// openRepoIn opens the repository in st with this node's write key,
// creating the repository (and the key) when st holds none, or fetching
// the key from the repository's config with a recipient's identity.
func openRepoIn(data string, st backup.Storage, recips []string, identity string, stdout io.Writer) (*backup.Repo, error) {
	kdir := filepath.Join(data, backupKeysDir)
	repo := st.String()
	if _, err := st.Size(context.Background(), "config"); errors.Is(err, fs.ErrNotExist) {
		if len(recips) == 0 {
			return nil, fail(exitUsage, repo+" holds no repository and no recipient was given",
				"pass --recipient age1... (several allowed) or --recipients-file; the private keys stay with the backup officers, not on this server")
		}
		k, err := backup.InitIn(st, recips)
		if err != nil {
			return nil, fail(exitFail, err.Error(), "check the recipients (age1...) and that the repository path is writable")
		}
		if err := saveWriteKey(kdir, k); err != nil {
			return nil, err
		}
		fmt.Fprintf(stdout, "created repository %s (encrypted to %d recipients)\n", repo, len(recips))
		return backup.OpenIn(st, k)
	} else if err != nil {
		return nil, fail(exitFail, "cannot read the repository: "+err.Error(), "")
	}
	if _, r := findWriteKey(data, st); r != nil {
		return r, nil
	}
	if identity == "" {
		return nil, fail(exitFail, "this node holds no write key for the repository "+repo,
			"run once with --identity FILE (a backup officer's identity) to fetch it, or back up to a new repository")
	}
	ids, err := readIdentities(identity)
	if err != nil {
		return nil, err
	}
	k, err := backup.ReadKeyIn(st, ids)
	if err != nil {
		return nil, fail(exitFail, "cannot read the repository key: "+err.Error(), "is the identity one of the repository's recipients?")
	}
	if err := saveWriteKey(kdir, k); err != nil {
		return nil, err
	}
	return backup.OpenIn(st, k)
}

// findWriteKey returns the node's write key for the repository in st and
// the repository opened with it, or nils.
func findWriteKey(data string, st backup.Storage) (*backup.Key, *backup.Repo) {
	kdir := filepath.Join(data, backupKeysDir)
	ents, _ := os.ReadDir(kdir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(kdir, e.Name()))
		if err != nil {
			continue
		}
		var k backup.Key
		if json.Unmarshal(b, &k) != nil {
			continue
		}
		if r, err := backup.OpenIn(st, &k); err == nil {
			return &k, r
		}
	}
	return nil, nil
}

func saveWriteKey(kdir string, k *backup.Key) error {
	if err := os.MkdirAll(kdir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(kdir, k.Repo+".json"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	} else if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// createSnapshot dumps the database (dumpStore for the embedded store,
// dumpStorePG for a PostgreSQL one, as DIR/store.json says: one read
// transaction, rows as stored, ordered so that a small change costs about
// its size, the same format from either backend),
// loads the dump into a scratch store to prove it loads and to verify its
// audit log, and backs up the dump with the key file, TLS files, write
// keys and the shredded-keys list.
func createSnapshot(ctx context.Context, data string, r *backup.Repo) (*backup.Manifest, backup.Stats, error) {
	tmp, err := os.MkdirTemp(data, ".backup-")
	if err != nil {
		return nil, backup.Stats{}, err
	}
	defer os.RemoveAll(tmp)
	dump := filepath.Join(tmp, dumpDir)
	if err := os.Mkdir(dump, 0o700); err != nil {
		return nil, backup.Stats{}, err
	}
	cfg, err := readStoreConfig(data)
	if err != nil {
		return nil, backup.Stats{}, err
	}
	var counts map[string]int64
	if cfg.Backend == "postgres" {
		dsn := storeDSN(cfg)
		if counts, err = dumpStorePG(ctx, dsn, dump); err != nil {
			return nil, backup.Stats{}, fail(exitFail, "cannot dump the PostgreSQL store "+redactDSN(dsn)+": "+pgErrLine(err),
				"is the server reachable, may the role read phivault's tables (password in PHIVAULT_DB or PGPASSWORD), and is it a store of this phivault version?")
		}
	} else if counts, err = dumpStore(ctx, filepath.Join(data, sqlite.FileName), dump); err != nil {
		return nil, backup.Stats{}, fail(exitFail, "cannot dump the database: "+err.Error(), "is "+data+" a phivault data directory of this version?")
	}
	scratch := filepath.Join(tmp, "check")
	if _, err := loadDump(ctx, dump, scratch); err != nil {
		return nil, backup.Stats{}, fail(exitFail, "the database dump does not load back, not backing it up: "+err.Error(), "run 'phivault check --data "+data+"'")
	}
	tree, rep, err := auditFacts(ctx, scratch)
	if err != nil {
		return nil, backup.Stats{}, err
	}
	if !rep.OK() {
		return nil, backup.Stats{}, fail(exitFail, "the audit log does not verify, not backing it up as good: "+rep.Problems[0].String(),
			"run 'phivault audit verify' and keep this directory as evidence")
	}
	kek := keyFileName // or, for a KEK in an HSM, the record naming it (no key material)
	if _, hsm, _ := readKEKConfig(data); hsm {
		kek = kekConfigName
	}
	var srcs []backup.Source
	for _, name := range []string{"versions", "audit", "meta", "index", factsName} {
		srcs = append(srcs, backup.Source{Path: dumpDir + "/" + name, Local: filepath.Join(dump, name)})
	}
	srcs = append(srcs, backup.Source{Path: kek, Local: filepath.Join(data, kek)})
	for _, d := range []string{tlsDirName, backupKeysDir, shreddedKeysName, auditVKeyFile} {
		s, err := walkSources(data, d)
		if err != nil {
			return nil, backup.Stats{}, err
		}
		srcs = append(srcs, s...)
	}
	return r.Backup(ctx, srcs, counts, tree)
}

// walkSources lists the regular files at DIR/rel (a file or a directory);
// a missing rel is no file.
func walkSources(data, rel string) ([]backup.Source, error) {
	var out []backup.Source
	err := filepath.WalkDir(filepath.Join(data, rel), func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		r, err := filepath.Rel(data, p)
		out = append(out, backup.Source{Path: filepath.ToSlash(r), Local: p})
		return err
	})
	return out, err
}

// storeCounts counts what a restore must reproduce, from a database file
// no one writes.
func storeCounts(ctx context.Context, path string) (map[string]int64, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	counts := map[string]int64{}
	for name, q := range map[string]string{
		"versions":  "SELECT count(*) FROM versions",
		"resources": "SELECT count(*) FROM current WHERE deleted = 0",
		"deleted":   "SELECT count(*) FROM current WHERE deleted = 1",
		"tokens":    "SELECT count(*) FROM idx",
		"meta":      "SELECT count(*) FROM meta",
		"audit":     "SELECT count(*) FROM audit",
	} {
		var n int64
		if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", name, err)
		}
		counts[name] = n
	}
	return counts, nil
}

// auditFacts verifies the audit log of the store in dir and returns its
// tree. The verifier key is the public key stored with the log; a log with
// checkpoints but no key fails.
func auditFacts(ctx context.Context, dir string) (backup.AuditTree, *audit.Report, error) {
	st, err := sqlite.Open(dir, sqlite.WithReaders(1))
	if err != nil {
		return backup.AuditTree{}, nil, err
	}
	defer st.Close()
	return storeAuditFacts(ctx, st)
}

func storeAuditFacts(ctx context.Context, st store.Backend) (backup.AuditTree, *audit.Report, error) {
	var rep *audit.Report
	err := st.View(ctx, func(r store.Reader) error {
		var v note.Verifier = noVerifier{}
		if vk, err := r.Meta(auditVKeyMeta); err == nil {
			if v, err = note.NewVerifier(string(vk)); err != nil {
				return fmt.Errorf("audit verifier key: %w", err)
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var err error
		rep, err = audit.Verify(ctx, r, v)
		return err
	})
	if err != nil {
		return backup.AuditTree{}, nil, err
	}
	return backup.AuditTree{Size: rep.Leaves, Root: rep.Root}, rep, nil
}

// noVerifier rejects every signature: a store without a verifier key must
// hold no checkpoints.
type noVerifier struct{}

func (noVerifier) Name() string            { return "none" }
func (noVerifier) KeyHash() uint32         { return 0 }
func (noVerifier) Verify(_, _ []byte) bool { return false }
func readIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fail(exitUsage, "cannot read the identity file: "+err.Error(), "--identity takes an age identity file (AGE-SECRET-KEY-1...)")
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fail(exitUsage, "the identity file holds no valid age identity", "it is the file made by age-keygen")
	}
	return ids, nil
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}
