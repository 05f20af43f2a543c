package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/authn"
	"github.com/phivault/phivault/internal/server"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/synth"
)

// badCase is one bad request and the status it must get.
type badCase struct {
	name   string
	method string
	path   string // under the server root, e.g. /fhir/Patient
	ct     string // Content-Type; "" for none
	hdr    map[string]string
	body   []byte
	want   int
	noAuth bool // send no bearer token
}

// badEnv is a loaded data directory served by the real HTTPS handler.
type badEnv struct {
	t     *testing.T
	n     *node
	srv   *httptest.Server
	token string
	// fixtures: ids of stored resources and their current bodies
	patient, obs, enc, cond, org string
	bodies                       map[string]map[string]any // "Type/id" -> current resource
}

func newBadEnv(t *testing.T) *badEnv {
	t.Helper()
	dir := t.TempDir()
	if _, err := initDir(dir, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	n, err := openNode(context.Background(), dir, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.close)
	tok, _, err := n.tokens.Mint("badinput-operator", []string{authn.OperatorRole}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The API needs its public URL, known only once the server listens.
	var h atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.Load().(http.Handler).ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	api := n.api(srv.URL + "/fhir")
	h.Store(server.Handler(server.Config{FHIR: api.Handler(), Auth: n.tokens, Audit: n.audit,
		Log: slog.New(slog.DiscardHandler), Metrics: server.NewMetrics()}))
	t.Cleanup(srv.Close)
	e := &badEnv{t: t, n: n, srv: srv, token: tok.Reveal(), bodies: map[string]map[string]any{}}

	// 20 synthetic patients, imported as transaction bundles through POST /fhir.
	// idempotent turns the urn:uuid POSTs into PUTs, so ids (and so the
	// fixtures below, and the corpus) are the same on every run.
	for b := range synth.Bundles(synth.Options{Seed: 11, Patients: 20}) {
		idempotent(b)
		raw, _ := json.Marshal(b)
		if st, body := e.send(badCase{method: "POST", path: "/fhir", ct: "application/fhir+json", body: raw}); st != http.StatusOK {
			t.Fatalf("import: %d %.300s", st, body)
		}
	}
	for _, typ := range []string{"Patient", "Observation", "Encounter", "Condition", "Organization"} {
		st, body := e.send(badCase{method: "GET", path: "/fhir/" + typ + "?_count=1"})
		var bundle struct {
			Entry []struct{ Resource map[string]any }
		}
		if err := json.Unmarshal(body, &bundle); st != http.StatusOK || err != nil || len(bundle.Entry) == 0 {
			t.Fatalf("search %s: %d %v %.300s", typ, st, err, body)
		}
		res := bundle.Entry[0].Resource
		id := res["id"].(string)
		e.bodies[typ+"/"+id] = res
		switch typ {
		case "Patient":
			e.patient = id
		case "Observation":
			e.obs = id
		case "Encounter":
			e.enc = id
		case "Condition":
			e.cond = id
		case "Organization":
			e.org = id
		}
	}
	// Give the patient a second version, so that If-Match W/"1" is stale.
	p := e.bodies["Patient/"+e.patient]
	delete(p, "meta")
	raw, _ := json.Marshal(p)
	if st, body := e.send(badCase{method: "PUT", path: "/fhir/Patient/" + e.patient, ct: "application/fhir+json", body: raw}); st != http.StatusOK {
		t.Fatalf("update: %d %.300s", st, body)
	}
	return e
}

// send sends c and returns the status and body.
func (e *badEnv) send(c badCase) (int, []byte) {
	req, err := http.NewRequest(c.method, e.srv.URL+c.path, bytes.NewReader(c.body))
	if err != nil {
		e.t.Fatalf("%s: %v", c.name, err)
	}
	if c.body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	if !c.noAuth {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	if c.ct != "" {
		req.Header.Set("Content-Type", c.ct)
	}
	for k, v := range c.hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s: %v", c.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s: reading the response: %v", c.name, err)
	}
	return resp.StatusCode, b
}

// checksum hashes everything the store holds except the audit log: every
// version of every resource (type, id, version, time, delete flag, change
// sequence, sealed body) and every metadata entry (wrapped keys, token
// state). Index tokens are not readable through the store interface; a
// changed index would need a changed version, which this sees. It also
// returns the number of audit leaves.
func (e *badEnv) checksum() (sum [32]byte, auditSize int64) {
	h := sha256.New()
	field := func(b []byte) {
		h.Write(binary.AppendUvarint(nil, uint64(len(b))))
		h.Write(b)
	}
	err := e.n.db.View(context.Background(), func(r store.Reader) error {
		vs, err := r.History(store.HistoryQuery{})
		if err != nil {
			return err
		}
		for _, v := range vs {
			field([]byte(fmt.Sprintf("%s/%s/%d/%d/%t/%d", v.Type, v.ID, v.VID, v.Updated.UnixMicro(), v.Deleted, v.Seq)))
			field(v.Body)
		}
		kvs, err := r.MetaPrefix("")
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			field([]byte(kv.Key))
			field(kv.Value)
		}
		auditSize, err = r.AuditSize()
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, auditSize
}

// TestBadInputCorpus sends every case of the corpus to the real HTTPS
// handler over a loaded store: each gets its exact 4xx status and an
// OperationOutcome with at least one issue, and afterwards the store is
// unchanged except for one audit event per request.
func TestBadInputCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("bad-input corpus: skipped under -short (it loads 20 patients)")
	}
	e := newBadEnv(t)
	cases := e.corpus()
	if len(cases) < 200 {
		t.Fatalf("the corpus has %d cases, want at least 200", len(cases))
	}
	before, audit0 := e.checksum()
	for _, c := range cases {
		st, body := e.send(c)
		if st >= 500 {
			t.Errorf("%s: %s %s answered %d: %.300s", c.name, c.method, c.path, st, body)
			continue
		}
		if st != c.want {
			t.Errorf("%s: %s %.80s answered %d, want %d: %.300s", c.name, c.method, c.path, st, c.want, body)
		}
		var oo struct {
			ResourceType string
			Issue        []struct{ Severity, Code string }
		}
		if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
			t.Errorf("%s: the body is not an OperationOutcome with an issue: %.300s", c.name, body)
		}
	}
	after, audit1 := e.checksum()
	if before != after {
		t.Errorf("the store changed while answering bad requests")
	}
	if got := audit1 - audit0; got != int64(len(cases)) {
		t.Errorf("the audit log grew by %d events for %d requests, want one each", got, len(cases))
	}
	t.Logf("%d bad requests", len(cases))
}

// fileCases are the bodies under testdata/badinput/STATUS, each POSTed as
// a Patient: malformed JSON under 400, JSON that is no valid resource
// under 422.
func (e *badEnv) fileCases() []badCase {
	files, err := filepath.Glob(filepath.Join("testdata", "badinput", "4??", "*"))
	if err != nil || len(files) == 0 {
		e.t.Fatalf("no files under testdata/badinput: %v", err)
	}
	var out []badCase
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			e.t.Fatal(err)
		}
		want, err := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, badCase{name: "file " + filepath.Base(f), method: "POST", path: "/fhir/Patient", ct: "application/fhir+json", body: b, want: want})
	}
	return out
}

// compact marshals v, or fails the test.
func (e *badEnv) compact(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// clone returns a deep copy of the stored resource key ("Type/id") without
// its meta.
func (e *badEnv) clone(key string) map[string]any {
	var m map[string]any
	json.Unmarshal(e.compact(e.bodies[key]), &m)
	delete(m, "meta")
	return m
}

func splitKey(key string) (typ, id string) {
	typ, id, _ = strings.Cut(key, "/")
	return typ, id
}
