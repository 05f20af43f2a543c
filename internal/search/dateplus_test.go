package search

import (
	"slices"
	"testing"
)

// TestDateUnescapedPlus: a time zone offset whose '+' the client left
// unescaped in the URL (so it arrives as a space) means the same instant
// as the escaped one, for date and _lastUpdated values alike.
func TestDateUnescapedPlus(t *testing.T) {
	e := newEnv(t)
	obs := func(id, when string) map[string]any {
		return map[string]any{"resourceType": "Observation", "id": id, "status": "final",
			"code": map[string]any{"text": "x"}, "effectiveDateTime": when}
	}
	// 2024-01-02T03:30:00+01:00 is 02:30Z.
	e.load(obs("early", "2024-01-02T02:00:00Z"), obs("mid", "2024-01-02T02:45:00Z"), obs("late", "2024-01-02T04:00:00Z"))
	for _, q := range []string{"date=ge2024-01-02T03:30:00", "date=lt2024-01-02T03:30:00"} {
		escaped := e.get("Observation?" + q + "%2B01:00")
		raw := e.get("Observation?" + q + "+01:00")
		if escaped.status != 200 || raw.status != 200 {
			t.Fatalf("%s: %d (escaped) and %d (unescaped '+')", q, escaped.status, raw.status)
		}
		want := []string{"Observation/mid", "Observation/late"}
		if q[5:7] == "lt" {
			want = []string{"Observation/early"}
		}
		if !slices.Equal(sorted(escaped.matches), sorted(want)) || !slices.Equal(sorted(raw.matches), sorted(want)) {
			t.Errorf("%s+01:00: escaped %v, unescaped %v, want %v", q, escaped.matches, raw.matches, want)
		}
	}
	if b := e.get("Observation?_lastUpdated=gt2000-01-01T00:00:00+01:00"); b.status != 200 || len(b.matches) != 3 {
		t.Errorf("_lastUpdated with an unescaped '+': %d, %d matches, want 200 and 3", b.status, len(b.matches))
	}
	// A space anywhere else is still a bad value.
	if b := e.get("Observation?date=ge2024-01-02 03:30:00Z"); b.status != 400 {
		t.Errorf("a date with a space for the T: %d, want 400", b.status)
	}
}
