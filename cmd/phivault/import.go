package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"

	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/server"
)

func runImport(args []string, stdout, stderr io.Writer) error {
	fset, data := newFlags("import", "--data DIR FILE|DIR...", stderr)
	workers := fset.Int("workers", 4, "files imported at once")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	if err := needData(*data, "import"); err != nil {
		return err
	}
	if fset.NArg() == 0 {
		return fail(exitUsage, "no files to import", "phivault import --data DIR bundle.json data.ndjson dir/")
	}
	files, err := importFiles(fset.Args())
	if err != nil {
		return fail(exitUsage, err.Error(), "import takes .json bundles or resources and .ndjson files, or directories of them")
	}
	client, closeFn, err := operatorClient(*data, stderr)
	if err != nil {
		return err
	}
	defer closeFn()
	im := &importer{client: client, stderr: stderr, total: len(files), tty: isTerminal(stderr)}
	im.run(files, max(*workers, 1))
	fmt.Fprintf(stdout, "imported %d of %d files (%d resources); %d failed\n", im.ok.Load(), len(files), im.resources.Load(), im.failed.Load())
	if im.failed.Load() > 0 {
		return &cliError{msg: fmt.Sprintf("%d files failed to import (listed above)", im.failed.Load()), hint: "fix them and run the same import again: it is safe to re-run", code: exitPartial}
	}
	return nil
}

// operatorClient reaches the server through its admin socket when one is
// running, or opens the data directory in this process.
func operatorClient(dir string, stderr io.Writer) (*http.Client, func(), error) {
	sock := filepath.Join(dir, server.SocketName)
	c := server.AdminClient(sock)
	if resp, err := c.Get("http://phivault/fhir/metadata"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return c, func() {}, nil
		}
	}
	n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), stderr)
	if errors.Is(err, errLocked) {
		return nil, nil, fail(exitFail, "a server holds the data directory but its admin socket does not answer", "wait for it to finish starting, or stop it")
	}
	if err != nil {
		return nil, nil, err
	}
	p := policy.Principal{UserID: fmt.Sprintf("operator:uid-%d", os.Getuid()), Roles: []string{authn.OperatorRole}, Method: "local-cli"}
	return server.InProcess(n.api("http://phivault/fhir").Handler(), p), n.close, nil
}

// importFiles expands the arguments into .json and .ndjson files: the
// shared reference data (batch bundles, and bundles of organizations and
// practitioners with no patient) goes first, as exports like Synthea's
// require.
func importFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(p, ".json") || strings.HasSuffix(p, ".ndjson")) {
				out = append(out, p)
			} else if !d.IsDir() && p == a {
				return fmt.Errorf("%s is neither .json nor .ndjson", p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return sharedFirst(out[i]) && !sharedFirst(out[j]) })
	return out, nil
}

// sharedFirst reports, from the first few KiB of a file, whether it holds
// shared reference data to import before everything else, one file at a
// time: a batch bundle, or a bundle that starts without a Patient (such as
// Synthea's hospitalInformation and practitionerInformation). Imported
// beside the patients' bundles, which write the same organizations, a
// large one of these would keep losing to their small transactions.
func sharedFirst(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 4096)
	n, _ := io.ReadFull(f, head)
	h := bytes.ReplaceAll(head[:n], []byte(`": "`), []byte(`":"`))
	if bytes.Contains(h, []byte(`"type":"batch"`)) {
		return true
	}
	return bytes.Contains(h, []byte(`"resourceType":"Bundle"`)) && !bytes.Contains(h, []byte(`"resourceType":"Patient"`))
}

type importer struct {
	client                *http.Client
	stderr                io.Writer
	total                 int
	tty                   bool
	mu                    sync.Mutex
	ok, failed, resources atomic.Int64
}

func (im *importer) run(files []string, workers int) {
	// Shared reference data first, all of it, before the patients.
	i := 0
	for i < len(files) && sharedFirst(files[i]) {
		im.one(files[i])
		i++
	}
	ch := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range ch {
				im.one(f)
			}
		}()
	}
	for _, f := range files[i:] {
		ch <- f
	}
	close(ch)
	wg.Wait()
	if im.tty {
		fmt.Fprintln(im.stderr)
	}
}

func (im *importer) one(path string) {
	n, err := im.importFile(path)
	im.mu.Lock()
	defer im.mu.Unlock()
	if err != nil {
		im.failed.Add(1)
		if im.tty {
			fmt.Fprint(im.stderr, "\r\033[K")
		}
		fmt.Fprintf(im.stderr, "FAILED %s: %v\n", path, err)
	} else {
		im.ok.Add(1)
		im.resources.Add(int64(n))
	}
	if im.tty {
		done := im.ok.Load() + im.failed.Load()
		fmt.Fprintf(im.stderr, "\r[%-30s] %d/%d files, %d resources", strings.Repeat("=", int(30*done/int64(max(im.total, 1)))), done, im.total, im.resources.Load())
	}
}

// importFile imports one file and returns how many resources it stored.
func (im *importer) importFile(path string) (int, error) {
	if strings.HasSuffix(path, ".ndjson") {
		return im.importNDJSON(path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var res map[string]any
	if err := dec.Decode(&res); err != nil {
		return 0, fmt.Errorf("not a JSON resource: %v", err)
	}
	if res["resourceType"] == "Bundle" && (res["type"] == "transaction" || res["type"] == "batch") {
		idempotent(res)
		return im.post(res)
	}
	return im.post(bundleOf([]map[string]any{res}, "transaction"))
}

func (im *importer) importNDJSON(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var batch []map[string]any
	total, line := 0, 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, err := im.post(bundleOf(batch, "batch"))
		total += n
		batch = batch[:0]
		return err
	}
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		var res map[string]any
		if err := dec.Decode(&res); err != nil {
			return total, fmt.Errorf("line %d: not a JSON resource", line)
		}
		batch = append(batch, res)
		if len(batch) == 500 {
			if err := flush(); err != nil {
				return total, fmt.Errorf("before line %d: %w", line, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return total, err
	}
	return total, flush()
}

// idempotent makes a bundle safe to import twice: entries that POST a
// resource with a urn:uuid fullUrl and no condition become PUTs under that
// uuid, so a second import updates instead of duplicating.
func idempotent(b map[string]any) {
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		ent, _ := e.(map[string]any)
		req, _ := ent["request"].(map[string]any)
		res, _ := ent["resource"].(map[string]any)
		full, _ := ent["fullUrl"].(string)
		uuid, ok := strings.CutPrefix(full, "urn:uuid:")
		if req == nil || res == nil || !ok || req["method"] != "POST" || req["ifNoneExist"] != nil {
			continue
		}
		typ, _ := res["resourceType"].(string)
		if url, _ := req["url"].(string); url != typ || len(uuid) > 64 {
			continue
		}
		res["id"] = uuid
		req["method"], req["url"] = "PUT", typ+"/"+uuid
	}
}

// bundleOf wraps resources in a bundle: PUT for those with an id, POST for
// the others.
func bundleOf(rs []map[string]any, typ string) map[string]any {
	entries := make([]any, 0, len(rs))
	for _, r := range rs {
		t, _ := r["resourceType"].(string)
		req := map[string]any{"method": "POST", "url": t}
		if id, ok := r["id"].(string); ok && id != "" {
			req = map[string]any{"method": "PUT", "url": t + "/" + id}
		}
		entries = append(entries, map[string]any{"resource": r, "request": req})
	}
	return map[string]any{"resourceType": "Bundle", "type": typ, "entry": entries}
}

// post sends a bundle and checks every entry's outcome. A transaction
// that kept losing to concurrent changes (409) is sent again, a few times
// and after a pause: the import's bundles are idempotent.
func (im *importer) post(b map[string]any) (int, error) {
	body, err := json.Marshal(b)
	if err != nil {
		return 0, err
	}
	var out map[string]any
	for try := 0; ; try++ {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://phivault/fhir", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("Prefer", "return=minimal")
		resp, err := im.client.Do(req)
		if err != nil {
			return 0, err
		}
		out = nil
		err = json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&out)
		resp.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("server answered %d without a readable body", resp.StatusCode)
		}
		if resp.StatusCode == http.StatusConflict && try < 4 {
			time.Sleep(time.Duration(100<<try) * time.Millisecond)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("%d: %s", resp.StatusCode, diagnostics(out))
		}
		break
	}
	n, bad := 0, []string{}
	entries, _ := out["entry"].([]any)
	for i, e := range entries {
		ent, _ := e.(map[string]any)
		r, _ := ent["response"].(map[string]any)
		st, _ := r["status"].(string)
		if strings.HasPrefix(st, "2") {
			n++
			continue
		}
		oo, _ := r["outcome"].(map[string]any)
		bad = append(bad, fmt.Sprintf("entry %d: %s %s", i, st, diagnostics(oo)))
	}
	if len(bad) > 0 {
		return n, errors.New(strings.Join(bad, "; "))
	}
	return n, nil
}

// diagnostics summarizes an OperationOutcome in one line.
func diagnostics(oo map[string]any) string {
	issues, _ := oo["issue"].([]any)
	var parts []string
	for _, i := range issues {
		is, _ := i.(map[string]any)
		d, _ := is["diagnostics"].(string)
		if ex, ok := is["expression"].([]any); ok && len(ex) > 0 {
			d = fmt.Sprint(ex[0]) + ": " + d
		}
		parts = append(parts, d)
	}
	if len(parts) == 0 {
		return "no details"
	}
	return strings.Join(parts, "; ")
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
