package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBackupPruneCLI: three snapshots of a live directory, pruned to the
// newest of the hour: a dry run deletes nothing, the prune removes two
// manifests, and what is kept verifies (every chunk read back) and
// restores.
func TestBackupPruneCLI(t *testing.T) {
	f := newBackupFixture(t, 3)
	for range 3 {
		f.create(t)
	}
	snaps := func() []string {
		ents, _ := os.ReadDir(filepath.Join(f.repo, "snapshots"))
		var ids []string
		for _, e := range ents {
			ids = append(ids, e.Name())
		}
		return ids
	}
	if n := len(snaps()); n != 3 {
		t.Fatalf("%d snapshots", n)
	}
	code, out, errOut := runCLI("backup", "prune", "--repo", f.repo, "--identity", f.idFile, "--keep-hourly", "1", "--dry-run")
	if code != exitOK || len(regexp.MustCompile(`(?m)^would remove [0-9a-f]{32} `).FindAllString(out, -1)) != 2 ||
		!regexp.MustCompile(`(?m)^keep   [0-9a-f]{32} \S+ \(newest, hourly `).MatchString(out) {
		t.Fatalf("dry run: %d\n%s%s", code, out, errOut)
	}
	if n := len(snaps()); n != 3 {
		t.Fatalf("the dry run deleted snapshots: %d left", n)
	}
	// The node's write key reads the manifests, so the operator's account
	// that owns the repository directory can prune with --data.
	code, out, errOut = runCLI("backup", "prune", "--repo", f.repo, "--data", f.data, "--keep-hourly", "1")
	if code != exitOK || !strings.Contains(out, "1 snapshots kept, 2 removed") {
		t.Fatalf("prune: %d\n%s%s", code, out, errOut)
	}
	if n := len(snaps()); n != 1 {
		t.Fatalf("%d snapshots after prune, want 1", n)
	}
	code, vout, verr := runCLI("backup", "verify", "--repo", f.repo, "--identity", f.idFile, "--read-data")
	if code != exitOK || !strings.Contains(vout, "OK:") {
		t.Fatalf("verify after prune: %d %s %s", code, vout, verr)
	}
	f.restore(t)
	// Another backup after the prune still works (its chunks are there or rewritten).
	f.create(t)
	code, vout, verr = runCLI("backup", "verify", "--repo", f.repo, "--identity", f.idFile, "--read-data")
	if code != exitOK || !strings.Contains(vout, "OK:") {
		t.Fatalf("verify after a backup following the prune: %d %s %s", code, vout, verr)
	}
}

func TestBackupPruneUsage(t *testing.T) {
	repo := t.TempDir()
	for _, c := range []struct {
		args      []string
		code      int
		msg, hint string
	}{
		{[]string{"--identity", "x", "--keep-daily", "1"}, exitUsage, "no repository given", "--repo"},
		{[]string{"--repo", repo, "--identity", "x"}, exitUsage, "a retention policy must keep at least one", "--keep-daily 7"},
		{[]string{"--repo", repo, "--keep-daily", "-1", "--identity", "x"}, exitUsage, "must not be negative", "--keep-hourly 24"},
		{[]string{"--repo", repo, "--keep-daily", "1"}, exitUsage, "prune needs --identity FILE or --data DIR", ""},
	} {
		code, out, errOut := runCLI(append([]string{"backup", "prune"}, c.args...)...)
		if code != c.code || out != "" || !strings.Contains(errOut, c.msg) || !strings.Contains(errOut, c.hint) || strings.Count(errOut, "\n") > 2 {
			t.Errorf("%v: exit %d\n%s%s", c.args, code, out, errOut)
		}
	}
}

// TestOnlyPruneDeletes: of the CLI's code, only 'backup prune' reaches the
// repository's deletion (backup.Deleter, Reader.Prune); serve and its
// schedule, which run with the server's credentials, never do.
func TestOnlyPruneDeletes(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "backup_prune.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Prune" || sel.Sel.Name == "Deleter") {
				t.Errorf("%s: %s uses %s; only backup_prune.go may delete from a repository", fset.Position(sel.Pos()), name, sel.Sel.Name)
			}
			return true
		})
	}
}
