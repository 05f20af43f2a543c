package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// The resources of the bundle test: bundleSize Patients that share an
// identifier (so that one search returns them all) and carry the number
// of the transaction that wrote them in an extension.
const (
	bundleSize   = 5
	bundleSystem = "urn:phivault:test:bundle-group"
	bundleGroup  = "atomicity"
	genURL       = "urn:phivault:test:generation"
	// sideID is a resource every transaction also updates, last, while
	// plain updates race for it: a transaction then meets its conflict
	// inside the database transaction after its other writes, the case
	// where they must be rolled back.
	sideID = "bundle-side"
)

// TestClusterBundleAtomicity: a transaction bundle is never half visible
// from any node (issue 9, acceptance 3). Writers on three nodes post
// transactions that each update the same five resources to a generation
// number of their own: unconditional ones, ones whose If-Match races the
// others, and ones that must fail (a stale ifMatch: 412; an invalid
// resource: 400/422), the failing entry placed anywhere in the bundle.
// Readers on every node meanwhile search for the five resources (one
// search is one database snapshot). Every answer must show all five at one
// version and one generation, and that generation must be the one the
// transaction acknowledged for that version; no failed transaction's
// generation may ever be seen; at the end every node shows the last
// committed generation, by search and by reading each resource.
//
// Batch reads are not a valid check of this: a batch runs its entries
// concurrently, each in its own snapshot, so a batch of reads may
// legitimately straddle a commit.
func TestClusterBundleAtomicity(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: three server processes; skipped under -short")
	}
	c := newCluster(t, 3)
	ctx := context.Background()
	ids := make([]string, bundleSize)
	for i := range ids {
		ids[i] = fmt.Sprintf("bundle-%d", i)
	}

	// Version 1 (generation 0) and version 2 (generation 1), written
	// before the race, so that W/"1" is stale for every later bundle.
	var committed sync.Map // version (int64) -> generation (int64)
	for gen := range int64(2) {
		status, body := c.postTx(ctx, 0, txBody(ids, gen, nil, -1, ""))
		if status != 200 {
			t.Fatalf("transaction of generation %d: %d %s", gen, status, body)
		}
		v, err := txVersion(body)
		if err != nil || v != gen+1 {
			t.Fatalf("transaction of generation %d: version %d (%v), want %d", gen, v, err, gen+1)
		}
		committed.Store(v, gen)
	}

	const writers, perWriter, readersPerNode = 3, 32, 2
	var (
		nextGen                   atomic.Int64
		failed                    sync.Map // generation -> status
		stop                      atomic.Bool
		reads, mixed              atomic.Int64
		nCommit, n409, n412, n4xx atomic.Int64
		seenMu                    sync.Mutex
		seen                      = map[[2]int64]int{} // (version, generation) -> reads
	)
	nextGen.Store(1)
	observe := func(node int) (version, gen int64, ok bool) {
		_, status, _, body, err := c.do(ctx, node, "GET", bundleSearch, nil)
		if err != nil || status != 200 {
			t.Errorf("node %d: search: %d %v %s", node, status, err, body)
			return 0, 0, false
		}
		reads.Add(1)
		version, gen, err = groupState(body)
		if err != nil {
			mixed.Add(1)
			t.Errorf("node %d: a transaction is half visible: %v", node, err)
			return 0, 0, false
		}
		seenMu.Lock()
		seen[[2]int64{version, gen}]++
		seenMu.Unlock()
		return version, gen, true
	}

	var readers sync.WaitGroup
	for r := range 3 * readersPerNode {
		readers.Go(func() {
			for !stop.Load() {
				if _, _, ok := observe(r % 3); !ok {
					return
				}
			}
		})
	}
	var sides sync.WaitGroup
	var sideStop atomic.Bool
	var nSide atomic.Int64
	for node := range 3 {
		sides.Go(func() {
			side, _ := json.Marshal(groupPatient(sideID, "side", -1))
			for !sideStop.Load() {
				_, status, _, body, err := c.do(ctx, node, "PUT", "/fhir/Patient/"+sideID, side)
				if err != nil || status != 200 && status != 409 {
					t.Errorf("node %d: update of %s: %d %v %s", node, sideID, status, err, body)
					return
				}
				nSide.Add(1)
			}
		})
	}
	var wg sync.WaitGroup
	for w := range writers {
		node := w
		wg.Go(func() {
			for k := range perWriter {
				gen := nextGen.Add(1)
				poison := (k + w) % bundleSize
				var body []byte
				kind := k % 4
				switch kind {
				case 0: // unconditional
					body = txBody(ids, gen, nil, -1, "")
				case 1: // every entry If-Match the version this node shows now
					v, _, ok := observe(node)
					if !ok {
						return
					}
					body = txBody(ids, gen, &v, -1, "")
				case 2: // one entry's ifMatch is stale
					body = txBody(ids, gen, nil, poison, "stale")
				case 3: // one entry is not a valid resource
					body = txBody(ids, gen, nil, poison, "invalid")
				}
				status, resp := c.postTx(ctx, node, body)
				switch {
				case status == 200 && kind < 2:
					v, err := txVersion(resp)
					if err != nil {
						t.Errorf("node %d: generation %d: %v", node, gen, err)
						return
					}
					if prev, dup := committed.LoadOrStore(v, gen); dup {
						t.Errorf("version %d acknowledged for generations %d and %d", v, prev, gen)
					}
					nCommit.Add(1)
				case status == 409 && kind < 2:
					n409.Add(1)
				case status == 412 && (kind == 1 || kind == 2):
					n412.Add(1)
				case (status == 400 || status == 422) && kind == 3:
					n4xx.Add(1)
				default:
					t.Errorf("node %d: transaction kind %d answered %d: %s", node, kind, status, resp)
					return
				}
				if status != 200 {
					failed.Store(gen, status)
				}
			}
		})
	}
	wg.Wait()
	sideStop.Store(true)
	stop.Store(true)
	sides.Wait()
	readers.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Every version from 1 to the last was acknowledged exactly once.
	var last int64
	committed.Range(func(k, _ any) bool { last = max(last, k.(int64)); return true })
	for v := int64(1); v <= last; v++ {
		if _, ok := committed.Load(v); !ok {
			t.Errorf("version %d exists but no transaction acknowledged it", v)
		}
	}
	// Everything read was acknowledged, at the version it was read at.
	versions := map[int64]bool{}
	for vg, n := range seen {
		versions[vg[0]] = true
		if st, bad := failed.Load(vg[1]); bad {
			t.Errorf("generation %d (its transaction failed with %d) was read %d times", vg[1], st, n)
		}
		if g, ok := committed.Load(vg[0]); !ok || g.(int64) != vg[1] {
			t.Errorf("read version %d at generation %d %d times; the transaction acknowledged for it wrote generation %v", vg[0], vg[1], n, g)
		}
	}
	if len(versions) < 3 {
		t.Errorf("the readers saw only versions %v: they did not overlap the writers", versions)
	}

	// Transactions that must fail, through every node, after the race.
	lastGen, _ := committed.Load(last)
	for node := range 3 {
		for _, how := range []string{"stale", "invalid"} {
			gen := nextGen.Add(1)
			status, body := c.postTx(ctx, node, txBody(ids, gen, nil, node%bundleSize, how))
			if status != 412 && how == "stale" || status != 400 && status != 422 && how == "invalid" {
				t.Errorf("node %d: transaction with a %s entry answered %d: %s", node, how, status, body)
			}
		}
	}
	// Every node shows the last committed generation, by search and by
	// reading each resource.
	for node := range 3 {
		if v, g, ok := observe(node); ok && (v != last || g != lastGen.(int64)) {
			t.Errorf("node %d: search shows version %d generation %d, want %d and %d", node, v, g, last, lastGen)
		}
		for _, id := range ids {
			_, status, etag, body, err := c.do(ctx, node, "GET", "/fhir/Patient/"+id, nil)
			g, gerr := generationOf(body)
			if err != nil || status != 200 || etag != fmt.Sprintf(`W/"%d"`, last) || gerr != nil || g != lastGen.(int64) {
				t.Errorf("node %d: Patient/%s: %d %s generation %d (%v %v), want version %d generation %d", node, id, status, etag, g, err, gerr, last, lastGen)
			}
		}
	}
	t.Logf("%d transactions over 3 nodes: %d committed (versions 3..%d), %d conflicts (409), %d If-Match failures (412), %d invalid (4xx), plus 6 failing ones after the race; %d plain updates of the side resource; %d searches on 3 nodes saw %d versions, %d half-visible",
		writers*perWriter, nCommit.Load(), last, n409.Load(), n412.Load(), n4xx.Load(), nSide.Load(), reads.Load(), len(versions), mixed.Load())
}

// bundleSearch finds the group's resources in one response.
var bundleSearch = "/fhir/Patient?_count=50&identifier=" + url.QueryEscape(bundleSystem+"|"+bundleGroup)

// postTx posts a transaction Bundle to node and returns status and body;
// a transport error fails the test.
func (c *cluster) postTx(ctx context.Context, node int, body []byte) (int, []byte) {
	c.t.Helper()
	_, status, _, resp, err := c.do(ctx, node, "POST", "/fhir", body)
	if err != nil {
		c.t.Errorf("node %d: transaction: %v", node, err)
	}
	return status, resp
}

// txBody builds a transaction that PUTs every id at generation gen, each
// entry with ifMatch *ifMatch when set, and then Patient/bundle-side
// unconditionally. Entry poison (when >= 0) is made
// to fail: "stale" gives it ifMatch W/"1" (always superseded), "invalid" a
// birthDate that is no date.
func txBody(ids []string, gen int64, ifMatch *int64, poison int, how string) []byte {
	entries := make([]any, len(ids), len(ids)+1)
	for i, id := range ids {
		res := groupPatient(id, bundleGroup, gen)
		req := map[string]any{"method": "PUT", "url": "Patient/" + id}
		if ifMatch != nil {
			req["ifMatch"] = fmt.Sprintf(`W/"%d"`, *ifMatch)
		}
		if i == poison {
			switch how {
			case "stale":
				req["ifMatch"] = `W/"1"`
			case "invalid":
				res["birthDate"] = "not-a-date"
			}
		}
		entries[i] = map[string]any{"resource": res, "request": req}
	}
	entries = append(entries, map[string]any{"resource": groupPatient(sideID, "side", gen),
		"request": map[string]any{"method": "PUT", "url": "Patient/" + sideID}})
	b, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
	return b
}

// groupPatient is a Patient of group (an identifier value) at generation
// gen.
func groupPatient(id, group string, gen int64) map[string]any {
	return map[string]any{"resourceType": "Patient", "id": id, "active": true,
		"identifier": []any{map[string]any{"system": bundleSystem, "value": group}},
		"name":       []any{map[string]any{"family": "Bundle", "given": []any{id}}},
		"extension":  []any{map[string]any{"url": genURL, "valueInteger": gen}}}
}

// txVersion returns the one version every group entry of a
// transaction-response reports (the side entry's is its own); entries at
// different versions are an error.
func txVersion(body []byte) (int64, error) {
	var b struct {
		Entry []struct {
			Response struct{ Status, Etag string }
		}
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return 0, err
	}
	if len(b.Entry) != bundleSize+1 {
		return 0, fmt.Errorf("%d response entries, want %d", len(b.Entry), bundleSize+1)
	}
	var vs []int64
	for _, e := range b.Entry[:bundleSize] {
		v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(e.Response.Etag, `W/"`), `"`), 10, 64)
		if err != nil || !strings.HasPrefix(e.Response.Status, "20") {
			return 0, fmt.Errorf("response entry %q %q", e.Response.Status, e.Response.Etag)
		}
		vs = append(vs, v)
	}
	if slices.Min(vs) != slices.Max(vs) {
		return 0, fmt.Errorf("entries at versions %v", vs)
	}
	return vs[0], nil
}

// groupState checks a search answer: all bundleSize resources, each once,
// at one version and one generation, which it returns.
func groupState(body []byte) (version, gen int64, err error) {
	var b struct {
		Entry []struct{ Resource json.RawMessage }
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return 0, 0, err
	}
	got := map[string][2]int64{}
	for _, e := range b.Entry {
		var r struct {
			ID   string
			Meta struct{ VersionID string }
		}
		if err := json.Unmarshal(e.Resource, &r); err != nil {
			return 0, 0, err
		}
		v, err := strconv.ParseInt(r.Meta.VersionID, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: versionId %q", r.ID, r.Meta.VersionID)
		}
		g, err := generationOf(e.Resource)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %v", r.ID, err)
		}
		got[r.ID] = [2]int64{v, g}
	}
	if len(got) != bundleSize || len(b.Entry) != bundleSize {
		return 0, 0, fmt.Errorf("the search returned %d entries (%d resources), want %d: %v", len(b.Entry), len(got), bundleSize, got)
	}
	var first [2]int64
	for _, vg := range got {
		first = vg
		break
	}
	for _, vg := range got {
		if vg != first {
			return 0, 0, fmt.Errorf("resources at different (version, generation): %v", got)
		}
	}
	return first[0], first[1], nil
}

// generationOf reads the generation extension of a resource.
func generationOf(res []byte) (int64, error) {
	var r struct {
		Extension []struct {
			URL          string
			ValueInteger *int64
		}
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return 0, err
	}
	for _, e := range r.Extension {
		if e.URL == genURL && e.ValueInteger != nil {
			return *e.ValueInteger, nil
		}
	}
	return 0, fmt.Errorf("no %s extension", genURL)
}
