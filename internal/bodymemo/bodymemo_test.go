package bodymemo

import (
	"errors"
	"fmt"
	"testing"
)

// TestMemo: a value is computed once per version, body and scope; another
// body, scope or version is computed anew; errors are not remembered; the
// memo stays within its bound.
func TestMemo(t *testing.T) {
	m := &Memo[string]{Max: 100}
	calls := 0
	get := func(id string, vid int64, body, scope string) string {
		t.Helper()
		v, err := m.Get("Observation", id, vid, []byte(body), scope, func() (string, error) {
			calls++
			return fmt.Sprint(id, vid, body, scope), nil
		})
		if err != nil || v != fmt.Sprint(id, vid, body, scope) {
			t.Fatalf("got %q, %v", v, err)
		}
		return v
	}
	get("o1", 1, "a", "")
	get("o1", 1, "a", "")
	if calls != 1 {
		t.Fatalf("%d computations of one value", calls)
	}
	get("o1", 1, "b", "")  // another body
	get("o1", 1, "a", "x") // another scope
	get("o1", 2, "a", "")  // another version
	get("o2", 1, "a", "")  // another resource
	if calls != 5 {
		t.Fatalf("%d computations, want 5", calls)
	}
	fail := errors.New("no")
	for range 2 {
		if _, err := m.Get("Observation", "o3", 1, nil, nil, func() (string, error) { calls++; return "", fail }); err != fail {
			t.Fatalf("error %v", err)
		}
	}
	if calls != 7 {
		t.Fatal("an error was remembered")
	}
	for i := range 250 {
		get(fmt.Sprint("p", i), 1, "a", "")
		if m.Len() > m.Max {
			t.Fatalf("%d values, bound %d", m.Len(), m.Max)
		}
	}
}
