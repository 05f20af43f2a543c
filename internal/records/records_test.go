package records

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/keys"
	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
)

// testIndexer is a test double: one token per resource id, the compartment
// from subject.reference (a Patient is its own compartment).
type testIndexer struct{ b *barrier.Barrier }

func (ix testIndexer) Index(res map[string]any) ([]store.Token, string, error) {
	typ, _ := res["resourceType"].(string)
	id, _ := res["id"].(string)
	toks := []store.Token{ix.b.Token("test-id", typ, id)}
	if typ == "Patient" {
		return toks, id, nil
	}
	subj, _ := res["subject"].(map[string]any)
	ref, _ := subj["reference"].(string)
	return toks, strings.TrimPrefix(ref, "Patient/"), nil
}

type env struct {
	dir string
	st  *sqlite.Backend
	b   *barrier.Barrier
	s   *Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	kp := filepath.Join(dir, "kek.json")
	if err := keys.CreateFile(kp, nil); err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenFile(kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, err := barrier.Open(context.Background(), kek, st, 100)
	if err != nil {
		t.Fatal(err)
	}
	return &env{dir: dir, st: st, b: b, s: New(st, b, testIndexer{b}, "default")}
}

func obs(id, patient, value string) map[string]any {
	return map[string]any{"resourceType": "Observation", "id": id, "status": "final",
		"subject": map[string]any{"reference": "Patient/" + patient}, "valueString": value}
}

func (e *env) commit(t *testing.T, ops ...Op) []Result {
	t.Helper()
	rs, err := e.s.Commit(context.Background(), ops, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func (e *env) auditSize(t *testing.T) int64 {
	t.Helper()
	var n int64
	if err := e.st.View(context.Background(), func(r store.Reader) (err error) {
		n, err = r.AuditSize()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) stored(t *testing.T, typ, id string) store.Version {
	t.Helper()
	var v store.Version
	if err := e.st.View(context.Background(), func(r store.Reader) (err error) {
		v, err = r.Current(typ, id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

func valueOf(t *testing.T, body []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	v, _ := m["valueString"].(string)
	return v
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := e.commit(t, Op{Type: "Observation", ID: "o1", Resource: obs("o1", "p1", "v1")})
	if r[0].VID != 1 || !r[0].Created || r[0].Patient != "p1" {
		t.Errorf("create = %+v", r[0])
	}
	r = e.commit(t, Op{Type: "Observation", ID: "o1", Resource: obs("o1", "p1", "v2"), IfMatch: 1})
	if r[0].VID != 2 || r[0].Created {
		t.Errorf("update = %+v", r[0])
	}
	r = e.commit(t, Op{Type: "Observation", ID: "o1"})
	if r[0].VID != 3 || !r[0].Deleted || r[0].NoOp {
		t.Errorf("delete = %+v", r[0])
	}
	if r = e.commit(t, Op{Type: "Observation", ID: "o1"}); !r[0].NoOp || r[0].VID != 3 {
		t.Errorf("second delete = %+v, want a no-op at version 3", r[0])
	}
	got, err := e.s.Read(ctx, "Observation", "o1")
	if !errors.Is(err, ErrDeleted) || got.VID != 3 || got.Body != nil {
		t.Errorf("Read deleted = %+v, %v; want ErrDeleted at version 3", got, err)
	}
	for vid, want := range map[int64]string{1: "v1", 2: "v2"} {
		got, err := e.s.VRead(ctx, "Observation", "o1", vid)
		if err != nil || valueOf(t, got.Body) != want || got.VID != vid || got.Patient != "p1" {
			t.Errorf("VRead %d = %+v, %v", vid, got, err)
		}
		var m struct{ Meta map[string]string }
		json.Unmarshal(got.Body, &m)
		if m.Meta["versionId"] != string(rune('0'+vid)) {
			t.Errorf("VRead %d: meta.versionId %q", vid, m.Meta["versionId"])
		}
	}
	if _, err := e.s.VRead(ctx, "Observation", "o1", 3); !errors.Is(err, ErrDeleted) {
		t.Errorf("VRead of the delete marker = %v, want ErrDeleted", err)
	}
	for _, vid := range []int64{0, 4} {
		if _, err := e.s.VRead(ctx, "Observation", "o1", vid); !errors.Is(err, ErrNotFound) {
			t.Errorf("VRead %d = %v, want ErrNotFound", vid, err)
		}
	}
	if _, err := e.s.Read(ctx, "Observation", "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Read absent = %v, want ErrNotFound", err)
	}
	hist, err := e.s.History(ctx, store.HistoryQuery{Type: "Observation", ID: "o1"})
	if err != nil {
		t.Fatal(err)
	}
	var vids []int64
	for _, h := range hist {
		vids = append(vids, h.VID)
	}
	if diff := cmp.Diff([]int64{3, 2, 1}, vids); diff != "" || !hist[0].Deleted || valueOf(t, hist[2].Body) != "v1" {
		t.Errorf("History versions (-want +got):\n%s", diff)
	}
	if ids, _ := e.s.Match(ctx, store.MatchQuery{Type: "Observation"}); len(ids) != 0 {
		t.Errorf("Match finds deleted resources: %v", ids)
	}
	r = e.commit(t, Op{Type: "Observation", ID: "o1", Resource: obs("o1", "p1", "v4"), MustCreate: true})
	if r[0].VID != 4 || !r[0].Created {
		t.Errorf("re-create after delete = %+v, want version 4, created", r[0])
	}
}

func TestPreconditionsAndConflicts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.commit(t, Op{Type: "Observation", ID: "o1", Resource: obs("o1", "p1", "v1")})
	before := e.auditSize(t)
	leaf := func([]Result) ([]byte, error) { return []byte("leaf"), nil }
	unless := &store.MatchQuery{Type: "Observation", All: [][]store.Token{{e.b.Token("test-id", "Observation", "o1")}}}
	tests := []struct {
		name string
		ops  []Op
		want error
	}{
		{"IfMatch stale", []Op{{Type: "Observation", ID: "o1", Resource: obs("o1", "p1", "x"), IfMatch: 2}}, ErrPrecondition},
		{"IfMatch on absent", []Op{{Type: "Observation", ID: "o9", Resource: obs("o9", "p1", "x"), IfMatch: 1}}, ErrPrecondition},
		{"MustCreate existing", []Op{{Type: "Observation", ID: "o1", Resource: obs("o1", "p1", "x"), MustCreate: true}}, ErrConflict},
		{"Unless matches", []Op{{Type: "Observation", ID: "o2", Resource: obs("o2", "p1", "x"), Unless: unless}}, ErrConflict},
		{"second op fails", []Op{
			{Type: "Observation", ID: "o3", Resource: obs("o3", "p1", "x")},
			{Type: "Observation", ID: "o1", Resource: obs("o1", "p1", "x"), IfMatch: 7},
		}, ErrPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.s.Commit(ctx, tt.ops, leaf); !errors.Is(err, tt.want) {
				t.Errorf("Commit = %v, want %v", err, tt.want)
			}
		})
	}
	if got, err := e.s.Read(ctx, "Observation", "o1"); err != nil || got.VID != 1 || valueOf(t, got.Body) != "v1" {
		t.Errorf("o1 after failed commits = %+v, %v; want version 1 unchanged", got, err)
	}
	for _, id := range []string{"o2", "o3", "o9"} {
		if _, err := e.s.Read(ctx, "Observation", id); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s written by a failed commit: %v", id, err)
		}
	}
	if n := e.auditSize(t); n != before {
		t.Errorf("failed commits appended %d audit leaves", n-before)
	}
	// The same Unless that does not match lets the commit through.
	miss := &store.MatchQuery{Type: "Observation", All: [][]store.Token{{e.b.Token("test-id", "Observation", "zzz")}}}
	if _, err := e.s.Commit(ctx, []Op{{Type: "Observation", ID: "o2", Resource: obs("o2", "p1", "x"), Unless: miss}}, leaf); err != nil {
		t.Errorf("Commit with a non-matching Unless: %v", err)
	}
	if _, err := e.s.Commit(ctx, []Op{{Type: "Observation", ID: "o4", Resource: obs("o5", "p1", "x")}}, nil); err == nil {
		t.Error("Commit of a resource whose id differs from the op's succeeded")
	}
}

func TestAuditLeafInSameCommit(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var seen []Result
	before := e.auditSize(t)
	rs, err := e.s.Commit(ctx, []Op{
		{Type: "Observation", ID: "o1", Resource: obs("o1", "p1", "a")},
		{Type: "Observation", ID: "o1", Resource: obs("o1", "p1", "b")},
	}, func(r []Result) ([]byte, error) {
		seen = r
		return []byte("audit:o1"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0].VID != 1 || seen[1].VID != 2 || rs[1].VID != 2 {
		t.Errorf("leaf saw %+v", seen)
	}
	var leaves [][]byte
	e.st.View(ctx, func(r store.Reader) (err error) {
		leaves, err = r.AuditLeaves(before, before+1)
		return err
	})
	if n := e.auditSize(t); n != before+1 || len(leaves) != 1 || string(leaves[0]) != "audit:o1" {
		t.Errorf("audit size %d (was %d), leaves %q; want one leaf audit:o1", n, before, leaves)
	}
	leafErr := errors.New("cannot build leaf")
	_, err = e.s.Commit(ctx, []Op{{Type: "Observation", ID: "o2", Resource: obs("o2", "p1", "a")}},
		func([]Result) ([]byte, error) { return nil, leafErr })
	if !errors.Is(err, leafErr) {
		t.Errorf("Commit with a failing leaf = %v", err)
	}
	if _, err := e.s.Read(ctx, "Observation", "o2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a change without its audit leaf was written: %v", err)
	}
}

func TestCompartmentKeys(t *testing.T) {
	e := newEnv(t)
	e.commit(t,
		Op{Type: "Patient", ID: "p1", Resource: map[string]any{"resourceType": "Patient", "id": "p1"}},
		Op{Type: "Observation", ID: "o1", Resource: obs("o1", "p1", "a")},
		Op{Type: "Observation", ID: "o2", Resource: obs("o2", "p2", "b")},
		Op{Type: "Practitioner", ID: "dr", Resource: map[string]any{"resourceType": "Practitioner", "id": "dr"}},
	)
	key := func(typ, id string) barrier.KeyID {
		k, err := barrier.KeyIDOf(e.stored(t, typ, id).Body)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	p1, o1, o2, dr := key("Patient", "p1"), key("Observation", "o1"), key("Observation", "o2"), key("Practitioner", "dr")
	if o1 == o2 || o1 == dr || o2 == dr {
		t.Errorf("compartments share keys: o1 %s, o2 %s, practitioner %s", o1, o2, dr)
	}
	if p1 != o1 {
		t.Errorf("Patient p1 (%s) and its Observation (%s) under different keys", p1, o1)
	}
	if got, err := e.s.Read(context.Background(), "Practitioner", "dr"); err != nil || got.Patient != "" {
		t.Errorf("Practitioner = %+v, %v; want no compartment", got, err)
	}
}

func TestOtherTenantCannotRead(t *testing.T) {
	e := newEnv(t)
	e.commit(t, Op{Type: "Observation", ID: "o1", Resource: obs("o1", "p1", "secret")})
	other := New(e.st, e.b, testIndexer{e.b}, "other")
	if got, err := other.Read(context.Background(), "Observation", "o1"); !errors.Is(err, ErrIntegrity) || got.Body != nil {
		t.Errorf("other tenant Read = %+v, %v; want ErrIntegrity", got, err)
	}
}

func TestNoPlaintextStored(t *testing.T) {
	e := newEnv(t)
	e.commit(t, Op{Type: "Observation", ID: "o1", Resource: obs("o1", "p-confidential", "Diagnosis: very-secret-finding")})
	v := e.stored(t, "Observation", "o1")
	for _, s := range []string{"very-secret-finding", "p-confidential", "Diagnosis"} {
		if bytes.Contains(v.Body, []byte(s)) {
			t.Errorf("stored body holds %q", s)
		}
	}
}
