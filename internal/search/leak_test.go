package search

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/phivault/phivault/internal/store"
)

// tokensOf returns every index token stored for the resources.
func tokensOf(t *testing.T, e *env, res []map[string]any) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, r := range res {
		raw := fmt.Sprint(r)
		_ = raw
		toks, _, err := e.eng.Index(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range toks {
			out[string(tk)] = true
		}
	}
	return out
}

// Two stores with different index keys share no token for the same data:
// the index key is needed to compute, or recognise, any token.
func TestTokensNeedTheIndexKey(t *testing.T) {
	data := fixture()[:120]
	a, b := newEnv(t), newEnv(t)
	ta, tb := tokensOf(t, a, data), tokensOf(t, b, data)
	if len(ta) < 1000 {
		t.Fatalf("only %d tokens", len(ta))
	}
	for k := range ta {
		if tb[k] {
			t.Fatalf("token shared by two stores with different keys")
		}
	}
	// The same key gives the same tokens (what makes search work).
	if again := tokensOf(t, a, data); len(again) != len(ta) {
		t.Fatalf("tokens not deterministic")
	}
	// And what the store holds are exactly these tokens: a query built
	// with the other store's key finds nothing.
	a.load(data...)
	n, err := a.rec.Count(context.Background(), store.MatchQuery{Type: "Patient", All: [][]store.Token{{b.eng.tok("Patient", "gender", kCode, "female")}}})
	if err != nil || n != 0 {
		t.Fatalf("foreign token matched %d (%v)", n, err)
	}
}

// dateValues (the fast path for date-only queries) agrees with Extract.
func TestDateValuesMatchExtract(t *testing.T) {
	e := newEnv(t)
	for _, r := range fixture() {
		raw, _ := json.Marshal(r)
		checkDateValues(t, e, raw)
	}
}
