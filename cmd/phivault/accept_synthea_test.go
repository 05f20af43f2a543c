package main

// Acceptance test 2 of issue 2: both Synthea sets import through the real
// `phivault import` command with zero errors; the store then holds exactly
// the resources the raw bundles describe, per type, and every reference
// between stored resources resolves. A user relies on an import neither
// losing nor duplicating records, and on links (subject, encounter,
// practitioner...) pointing at records that exist.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/corpus"
	"github.com/phivault/phivault/internal/fhir"
	"github.com/phivault/phivault/internal/store"
)

// syntheaFixture is a data directory with both Synthea sets imported, built
// once per test binary and shared by the Synthea and no-plaintext tests.
type syntheaFixture struct {
	dir       string   // the data directory
	raw       []string // the raw bundle files, in the order they were imported
	resources int64    // entries the import reported as stored
	elapsed   time.Duration
	built     bool
}

var (
	syntheaOnce sync.Once
	synthea     syntheaFixture
	// cleanups run after all tests (see TestMain in script_test.go).
	cleanupMu sync.Mutex
	cleanups  []func()
)

func atExit(f func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, f)
}

// syntheaData returns the shared fixture, importing it on first use. It
// skips under -short (the import takes minutes) or without the corpus.
func syntheaData(t *testing.T) *syntheaFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("the Synthea import takes minutes; skipped with -short")
	}
	corpus.Path(t, corpus.DataPipes)
	corpus.Path(t, corpus.SMART)
	syntheaOnce.Do(func() { buildSynthea(t) })
	if !synthea.built {
		t.Fatal("the shared Synthea import failed (see the first test that used it)")
	}
	return &synthea
}

func buildSynthea(t *testing.T) {
	root, err := os.MkdirTemp("", "phivault-accept-")
	if err != nil {
		t.Fatal(err)
	}
	atExit(func() { os.RemoveAll(root) })
	synthea.dir = filepath.Join(root, "data")
	if _, err := initDir(synthea.dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	// fhir-data-pipes first: its batch bundles create the organizations,
	// locations and practitioners that its patient bundles refer to.
	start := time.Now()
	for _, set := range []string{corpus.DataPipes, corpus.SMART} {
		raw := filepath.Join(root, "raw-"+strings.TrimSuffix(filepath.Base(set), ".tar.xz"))
		if err := os.Mkdir(raw, 0o700); err != nil {
			t.Fatal(err)
		}
		files, err := importFiles(corpus.ExtractSynthea(t, set, raw))
		if err != nil {
			t.Fatal(err)
		}
		synthea.raw = append(synthea.raw, files...)
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"import", "--data", synthea.dir}, files...), &stdout, &stderr)
		if code != exitOK || strings.Contains(stderr.String(), "FAILED") {
			t.Fatalf("import of %s: exit %d\n%.3000s\n%.3000s", set, code, stdout.String(), stderr.String())
		}
		m := regexp.MustCompile(`\((\d+) resources\); 0 failed`).FindStringSubmatch(stdout.String())
		if m == nil {
			t.Fatalf("import of %s: unexpected summary %q", set, stdout.String())
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		synthea.resources += n
	}
	synthea.elapsed = time.Since(start)
	synthea.built = true
}

// expectedCounts computes, from the raw bundles alone and in import order,
// how many resources of each type the store must hold afterwards. The rule:
//   - a POST with a urn:uuid fullUrl and no condition is made an idempotent
//     PUT under that uuid by the importer, so it counts once per distinct
//     (type, uuid): SMART repeats its organizations and practitioners, with
//     the same uuids, in every patient bundle;
//   - a PUT counts once per distinct (type, id);
//   - a conditional create (ifNoneExist "identifier=system|value", as the
//     fhir-data-pipes batch bundles use) creates a new resource only when no
//     resource of its type stored before it carries that identifier;
//   - any other POST creates a new resource.
func expectedCounts(t *testing.T, files []string) map[string]int {
	t.Helper()
	ids := map[string]map[string]bool{}    // type -> ids
	idents := map[string]map[string]bool{} // type -> "system|value" of stored resources
	add := func(typ, id string, res map[string]any) {
		if ids[typ] == nil {
			ids[typ], idents[typ] = map[string]bool{}, map[string]bool{}
		}
		ids[typ][id] = true
		for _, v := range list(res["identifier"]) {
			s, _ := v["system"].(string)
			val, _ := v["value"].(string)
			idents[typ][s+"|"+val] = true
		}
	}
	fresh := 0
	for _, f := range files {
		b, err := readJSONFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range list(b["entry"]) {
			res, _ := e["resource"].(map[string]any)
			req, _ := e["request"].(map[string]any)
			typ, _ := res["resourceType"].(string)
			method, _ := req["method"].(string)
			url, _ := req["url"].(string)
			full, _ := e["fullUrl"].(string)
			cond, hasCond := req["ifNoneExist"].(string)
			uuid, isUUID := strings.CutPrefix(full, "urn:uuid:")
			switch {
			case method == "POST" && hasCond:
				ident, ok := strings.CutPrefix(cond, "identifier=")
				if !ok || strings.ContainsAny(ident, "&,") {
					t.Fatalf("%s entry %d: condition %q is not one the expected counts understand", f, i, cond)
				}
				if !idents[typ][ident] {
					fresh++
					add(typ, fmt.Sprintf("conditional-%d", fresh), res)
				}
			case method == "POST" && isUUID && url == typ:
				add(typ, uuid, res)
			case method == "PUT":
				add(typ, strings.TrimPrefix(url, typ+"/"), res)
			case method == "POST":
				fresh++
				add(typ, fmt.Sprintf("new-%d", fresh), res)
			default:
				t.Fatalf("%s entry %d: method %q not expected in Synthea data", f, i, method)
			}
		}
	}
	out := map[string]int{}
	for typ, s := range ids {
		out[typ] = len(s)
	}
	return out
}

func TestAcceptSynthea(t *testing.T) {
	fx := syntheaData(t)
	t.Logf("imported %d bundles, %d resources in %v: %.0f resources/s",
		len(fx.raw), fx.resources, fx.elapsed.Round(time.Second), float64(fx.resources)/fx.elapsed.Seconds())

	want := expectedCounts(t, fx.raw)
	n, err := openNode(context.Background(), fx.dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	ctx := context.Background()

	total := 0
	var types []string
	for _, typ := range fhir.ResourceTypes() {
		got, err := n.records.Count(ctx, store.MatchQuery{Type: typ})
		if err != nil {
			t.Fatal(err)
		}
		if got != want[typ] {
			t.Errorf("%s: %d stored, want %d (computed from the raw bundles)", typ, got, want[typ])
		}
		if got > 0 {
			types = append(types, fmt.Sprintf("%s=%d", typ, got))
		}
		total += got
	}
	t.Logf("%d resources stored: %s", total, strings.Join(types, " "))

	// Every reference of every stored resource resolves to a stored one.
	stored := map[string]bool{}
	refs := map[string]string{} // reference -> one resource that holds it
	local := 0
	for _, typ := range fhir.ResourceTypes() {
		after := ""
		for {
			page, err := n.records.Match(ctx, store.MatchQuery{Type: typ, After: after, Limit: 2000})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			after = page[len(page)-1]
			entries, err := n.records.ReadMany(ctx, typ, page)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				key := e.Type + "/" + e.ID
				stored[key] = true
				var res map[string]any
				if err := json.Unmarshal(e.Body, &res); err != nil {
					t.Fatalf("%s: stored body is not JSON: %v", key, err)
				}
				eachReference(res, func(ref string) {
					if strings.HasPrefix(ref, "#") {
						local++ // a contained resource, inside this one
						return
					}
					refs[ref] = key
				})
			}
		}
	}
	bad := 0
	for ref, from := range refs {
		typ, id, ok := strings.Cut(ref, "/")
		switch {
		case !ok || !fhir.IsResourceType(typ) || strings.ContainsAny(id, "/?:"):
			t.Errorf("%s holds %q, which is not a resolved Type/id reference (urn:uuid and conditional references must be rewritten on import)", from, ref)
		case !stored[ref]:
			t.Errorf("%s refers to %s, which is not stored", from, ref)
		default:
			continue
		}
		if bad++; bad >= 20 {
			t.Fatal("too many bad references")
		}
	}
	t.Logf("%d distinct references between %d stored resources all resolve (%d local #references)", len(refs), len(stored), local)
}

// eachReference calls fn with every Reference.reference string in v.
func eachReference(v any, fn func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			if s, ok := c.(string); ok && k == "reference" {
				fn(s)
				continue
			}
			eachReference(c, fn)
		}
	case []any:
		for _, c := range v {
			eachReference(c, fn)
		}
	}
}

// fileBundles yields the raw bundles of files, in order.
func fileBundles(t *testing.T, files []string) func(func(map[string]any) bool) {
	return func(yield func(map[string]any) bool) {
		for _, f := range files {
			b, err := readJSONFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !yield(b) {
				return
			}
		}
	}
}

func readJSONFile(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return m, nil
}

func list(v any) []map[string]any {
	vs, _ := v.([]any)
	out := make([]map[string]any, 0, len(vs))
	for _, x := range vs {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}
