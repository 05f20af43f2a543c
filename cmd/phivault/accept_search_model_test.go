package main

// The search suite's model of the Synthea fixture: every resource of the
// searched types, read from the raw bundle files (never from the server),
// with its stored id and its references rewritten to the stored Type/id
// they resolve to. Expectations are computed over this model alone.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/phivault/phivault/internal/records"
	"github.com/phivault/phivault/internal/store"
)

// modelTypes are the resource types the suite searches or includes.
var modelTypes = map[string]bool{
	"Patient": true, "Observation": true, "Encounter": true, "Condition": true, "Immunization": true,
	"MedicationRequest": true, "Procedure": true, "Organization": true, "Practitioner": true,
	"Location": true, "DiagnosticReport": true, "AllergyIntolerance": true, "CarePlan": true,
	"Goal": true, "ImagingStudy": true,
}

// res is one resource of the model.
type res struct {
	typ, id string
	body    map[string]any // JSON numbers as json.Number; references are stored Type/id
}

func (r *res) key() string { return r.typ + "/" + r.id }

// model holds the resources of modelTypes as the store must hold them.
type model struct {
	byType map[string][]*res
	byKey  map[string]*res
}

// rawEntry is a bundle entry with its resource still undecoded.
type rawEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  struct {
		Method      string `json:"method"`
		URL         string `json:"url"`
		IfNoneExist string `json:"ifNoneExist"`
	} `json:"request"`
}

// loadModel reads the raw bundles (in import order) and maps every entry
// to the id it is stored under: the importer stores a POST with a
// urn:uuid fullUrl under that uuid (TestAcceptSynthea relies on the same
// rule), and a conditional create (fhir-data-pipes' Organizations,
// Locations and Practitioners) under the id the server gave the resource
// with that identifier, which the node's records tell. References are
// rewritten the way the server resolves them: urn:uuid to the entry of
// that fullUrl in the same bundle, Type?identifier=s|v to the stored
// resource with that identifier. The stored id set of every model type
// is then checked against the model, so a wrong mapping fails here.
func loadModel(t *testing.T, rec *records.Store, files []string) *model {
	t.Helper()
	ctx := context.Background()
	out := make([]*rawBundle, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	next := make(chan int)
	for range max(runtime.GOMAXPROCS(0), 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = loadBundle(files[i])
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	// Ids the importer gave from fullUrls are not conditional creates,
	// even when they carry the same identifier (both Synthea sets hold
	// some of the same Organizations).
	byUUID := map[string]bool{}
	for i, b := range out {
		if errs[i] != nil {
			t.Fatalf("%s: %v", files[i], errs[i])
		}
		for _, k := range b.full {
			byUUID[k] = true
		}
	}
	conditional := conditionalIDs(t, ctx, rec, byUUID)
	for i, b := range out {
		if err := b.resolve(conditional); err != nil {
			t.Fatalf("%s: %v", files[i], err)
		}
	}

	m := &model{byType: map[string][]*res{}, byKey: map[string]*res{}}
	for _, b := range out {
		for _, r := range b.list {
			if old, ok := m.byKey[r.key()]; ok {
				// SMART repeats its Organizations and Practitioners in
				// every bundle; the copies differ only in Synthea's
				// utilization extensions, which no query looks at.
				if !sameBut(old.body, r.body, "extension") {
					t.Fatalf("%s is imported twice with different content; the suite cannot tell which copy is stored", r.key())
				}
				continue
			}
			m.byKey[r.key()] = r
			m.byType[r.typ] = append(m.byType[r.typ], r)
		}
	}
	for typ := range modelTypes {
		sort.Slice(m.byType[typ], func(i, j int) bool { return m.byType[typ][i].id < m.byType[typ][j].id })
		ids, err := rec.Match(ctx, store.MatchQuery{Type: typ})
		if err != nil {
			t.Fatal(err)
		}
		want := m.byType[typ]
		if len(ids) != len(want) {
			t.Fatalf("%s: %d stored, the model holds %d", typ, len(ids), len(want))
		}
		for i, id := range ids {
			if id != want[i].id {
				t.Fatalf("%s: stored id %s is not the model's %s: the id mapping is wrong", typ, id, want[i].id)
			}
		}
	}
	return m
}

// conditionalIDs maps "Type|system|value" of every stored Organization,
// Location and Practitioner (the types fhir-data-pipes creates
// conditionally) whose id the server gave to its identifiers.
func conditionalIDs(t *testing.T, ctx context.Context, rec *records.Store, byUUID map[string]bool) map[string]string {
	out := map[string]string{}
	for _, typ := range []string{"Organization", "Location", "Practitioner"} {
		ids, err := rec.Match(ctx, store.MatchQuery{Type: typ})
		if err != nil {
			t.Fatal(err)
		}
		es, err := rec.ReadMany(ctx, typ, ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if byUUID[typ+"/"+e.ID] {
				continue
			}
			var r struct {
				Identifier []struct{ System, Value string }
			}
			if err := json.Unmarshal(e.Body, &r); err != nil {
				t.Fatal(err)
			}
			for _, i := range r.Identifier {
				k := typ + "|" + i.System + "|" + i.Value
				if old, ok := out[k]; ok && old != e.ID {
					out[k] = "" // ambiguous: a conditional reference to it would fail
					continue
				}
				out[k] = e.ID
			}
		}
	}
	return out
}

// rawBundle is one bundle of the model before its conditional ids and
// references are resolved.
type rawBundle struct {
	list     []*res
	cond     []string          // per list entry: "Type|system|value" of a conditional create, or ""
	full     map[string]string // fullUrl -> Type/id, for entries stored under their uuid
	condFull map[string]string // fullUrl -> "Type|system|value", for conditional creates
}

func loadBundle(path string) (*rawBundle, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var bundle struct {
		Entry []rawEntry `json:"entry"`
	}
	if err := json.Unmarshal(b, &bundle); err != nil {
		return nil, err
	}
	out := &rawBundle{full: map[string]string{}, condFull: map[string]string{}}
	for i, e := range bundle.Entry {
		typ, _, _ := strings.Cut(e.Request.URL, "/")
		typ, _, _ = strings.Cut(typ, "?")
		cond, id := "", ""
		switch {
		case e.Request.Method == "POST" && e.Request.IfNoneExist != "":
			ident, ok := strings.CutPrefix(e.Request.IfNoneExist, "identifier=")
			if !ok {
				return nil, fmt.Errorf("entry %d: condition %q not understood", i, e.Request.IfNoneExist)
			}
			cond = typ + "|" + ident
			out.condFull[e.FullURL] = cond
		case e.Request.Method == "POST" && strings.HasPrefix(e.FullURL, "urn:uuid:") && e.Request.URL == typ:
			id = strings.TrimPrefix(e.FullURL, "urn:uuid:")
			out.full[e.FullURL] = typ + "/" + id
		default:
			return nil, fmt.Errorf("entry %d: %s %s is not an entry the model understands", i, e.Request.Method, e.Request.URL)
		}
		if !modelTypes[typ] {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(e.Resource))
		dec.UseNumber()
		var body map[string]any
		if err := dec.Decode(&body); err != nil {
			return nil, fmt.Errorf("entry %d: %v", i, err)
		}
		out.list = append(out.list, &res{typ: typ, id: id, body: body})
		out.cond = append(out.cond, cond)
	}
	return out, nil
}

// resolve sets the ids of conditional creates and rewrites references.
func (b *rawBundle) resolve(conditional map[string]string) error {
	for f, c := range b.condFull {
		if conditional[c] == "" {
			return fmt.Errorf("no single stored resource has the identifier of the condition %s", c)
		}
		typ, _, _ := strings.Cut(c, "|")
		b.full[f] = typ + "/" + conditional[c]
	}
	for i, r := range b.list {
		if b.cond[i] != "" {
			r.id = conditional[b.cond[i]]
		}
		if err := resolveRefs(r.body, b.full, conditional); err != nil {
			return fmt.Errorf("%s: %v", r.key(), err)
		}
	}
	return nil
}

// resolveRefs rewrites every Reference.reference of v to the stored
// Type/id it resolves to; local #references stay as they are.
func resolveRefs(v any, full, conditional map[string]string) error {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			s, ok := c.(string)
			if k != "reference" || !ok {
				if err := resolveRefs(c, full, conditional); err != nil {
					return err
				}
				continue
			}
			switch {
			case strings.HasPrefix(s, "urn:uuid:"):
				if full[s] == "" {
					return fmt.Errorf("reference %s to nothing in the bundle", s)
				}
				v[k] = full[s]
			case strings.Contains(s, "?identifier="):
				typ, ident, _ := strings.Cut(s, "?identifier=")
				id := conditional[typ+"|"+ident]
				if id == "" {
					return fmt.Errorf("conditional reference %s resolves to no single stored resource", s)
				}
				v[k] = typ + "/" + id
			}
		}
	case []any:
		for _, c := range v {
			if err := resolveRefs(c, full, conditional); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameBut reports whether a and b are equal apart from the field skip.
func sameBut(a, b map[string]any, skip string) bool {
	if len(a) != len(b) && (len(a) < len(b)-1 || len(a) > len(b)+1) {
		return false
	}
	for k, v := range a {
		if k != skip && !reflect.DeepEqual(v, b[k]) {
			return false
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && k != skip {
			return false
		}
	}
	return true
}
