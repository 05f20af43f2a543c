package care

import (
	"encoding/json"
	"github.com/phivault/phivault/internal/policy"
	"testing"
	"time"
)

// FuzzStoredResource feeds arbitrary bodies to every reader of stored
// resources: none may panic, a partial date's first instant never follows
// its last, and flattening never yields more provisions than the body
// could hold.
func FuzzStoredResource(f *testing.F) {
	f.Add([]byte(`{"status":"active","period":{"start":"2025","end":"2025-06"},"participant":[{"member":{"reference":"Practitioner/a"}}]}`), "2025-06-01T10:00:00+02:00")
	f.Add([]byte(`{"type":"deny","provision":[{"type":"permit","actor":[{"reference":{"reference":"x/y/Practitioner/b/_history/2"}}]}]}`), "2025-02")
	f.Add([]byte(`{"status":"planned","start":"bad","period":{}}`), "")
	fc := New(nil, nil, Options{})
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte, date string) {
		careTeamKind(body, []string{"Practitioner/a"}, now)
		fc.encounterCurrent(body, now)
		fc.appointmentCurrent(body, now)
		var p provision
		if json.Unmarshal(body, &p) == nil {
			out := flatten(nil, "c", p, policyConsentZero(), 0)
			if len(out) > len(body) {
				t.Fatalf("%d provisions from %d bytes", len(out), len(body))
			}
		}
		lo, ok1 := parseDateTime(date, false)
		hi, ok2 := parseDateTime(date, true)
		if ok1 != ok2 || lo.After(hi) {
			t.Fatalf("parseDateTime(%q): %v %v / %v %v", date, lo, ok1, hi, ok2)
		}
		_ = reference{Reference: date}.local()
	})
}

func policyConsentZero() (c policy.Consent) { return c }
