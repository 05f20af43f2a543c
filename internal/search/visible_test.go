package search

import (
	"context"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phivault/phivault/internal/fhirapi"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
)

// onlyP1 is a visibility that admits patient p1's compartment only.
func onlyP1(_ context.Context, e records.Entry) bool { return e.Patient == "p1" }

func visibleEnv(t *testing.T) *env {
	e := newEnv(t)
	code := func(c string) map[string]any {
		return map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": c}}}
	}
	ob := func(id, pat, c string) map[string]any {
		return map[string]any{"resourceType": "Observation", "id": id, "status": "final", "code": code(c),
			"subject": map[string]any{"reference": "Patient/" + pat}}
	}
	e.load(map[string]any{"resourceType": "Patient", "id": "p1"}, map[string]any{"resourceType": "Patient", "id": "p2"},
		ob("o1", "p1", "1111-1"), ob("o2", "p2", "1111-1"), ob("o3", "p2", "9999-9"), ob("o4", "p1", "1111-1"))
	return e
}

// FindVisible leaves hidden matches out and gives a re-check query only
// when nothing was hidden, so that a conditional create whose condition
// matches only hidden resources neither conflicts nor reveals them.
func TestFindVisible(t *testing.T) {
	e := visibleEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		query     string
		limit     int
		ids       []string
		wantCheck bool
	}{
		{"code=1111-1", 0, []string{"o1", "o4"}, false},
		{"code=1111-1&subject=Patient/p1", 0, []string{"o1", "o4"}, true},
		{"code=1111-1&subject=Patient/p1", 1, []string{"o1"}, false},
		{"code=9999-9", 2, nil, false},
		{"code=0000-0", 2, nil, true},
		{"subject:Patient._id=p2", 0, nil, true}, // the chain's inner set is empty for this caller
	} {
		q, _ := url.ParseQuery(tc.query)
		ids, check, err := e.eng.FindVisible(ctx, "Observation", q, tc.limit, onlyP1)
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		if !cmp.Equal(tc.ids, ids) || (check != nil) != tc.wantCheck {
			t.Errorf("FindVisible(%s, %d) = %v, check %v; want %v, check %v", tc.query, tc.limit, ids, check != nil, tc.ids, tc.wantCheck)
		}
	}
	all, _, err := e.eng.FindVisible(ctx, "Observation", url.Values{"code": {"1111-1"}}, 0, nil)
	if err != nil || !cmp.Equal([]string{"o1", "o2", "o4"}, all) {
		t.Errorf("without visibility: %v %v", all, err)
	}
}

// A cursor opens only for the caller it was sealed for.
func TestCursorBoundToCaller(t *testing.T) {
	e := visibleEnv(t)
	ctx := context.Background()
	me := policy.Principal{UserID: "u1", SessionID: "s1"}
	q := url.Values{"code": {"1111-1"}, "_count": {"1"}}
	page, err := e.eng.Search(ctx, fhirapi.SearchRequest{Type: "Observation", Query: q, Visible: onlyP1, Caller: me})
	if err != nil || page.Next == "" || !page.HasTotal || page.Total != 2 {
		t.Fatalf("first page: %+v %v", page, err)
	}
	next, _ := url.ParseQuery(page.Next)
	for _, tc := range []struct {
		who policy.Principal
		ok  bool
	}{
		{me, true},
		{policy.Principal{UserID: "u2", SessionID: "s1"}, false},
		{policy.Principal{UserID: "u1", SessionID: "s2"}, false},
		{policy.Principal{UserID: "u1s1"}, false},
		{policy.Principal{}, false},
	} {
		p, err := e.eng.Search(ctx, fhirapi.SearchRequest{Type: "Observation", Query: next, Visible: onlyP1, Caller: tc.who})
		if tc.ok != (err == nil) {
			t.Errorf("next page as %+v: %v", tc.who, err)
		}
		if tc.ok && (len(p.Matches) != 1 || p.Matches[0].ID != "o4") {
			t.Errorf("next page: %+v", p.Matches)
		}
		if !tc.ok {
			if fe, ok := err.(*fhirapi.Error); !ok || fe.Status != 400 {
				t.Errorf("replay as %+v: %v, want a 400", tc.who, err)
			}
		}
	}
	// A link has one spelling: the same cursor with a line break inside
	// (which encoding/base64 would skip) is refused.
	c := next.Get("_cursor")
	respelled := url.Values{"code": {"1111-1"}, "_count": {"1"}, "_cursor": {c[:4] + "\n" + c[4:]}}
	if _, err := e.eng.Search(ctx, fhirapi.SearchRequest{Type: "Observation", Query: respelled, Visible: onlyP1, Caller: me}); err == nil {
		t.Error("a cursor with a line break inside was accepted")
	}
}
