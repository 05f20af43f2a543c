package audit

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// checkLeafJSON is the check as it was written with encoding/json: the
// reference checkLeaf must never be more lenient than.
func checkLeafJSON(leaf []byte) error {
	var ev struct {
		ResourceType string                 `json:"resourceType"`
		Recorded     string                 `json:"recorded"`
		Action       string                 `json:"action"`
		Outcome      string                 `json:"outcome"`
		Type         *struct{ Code string } `json:"type"`
		Agent        []json.RawMessage      `json:"agent"`
	}
	if err := json.Unmarshal(leaf, &ev); err != nil {
		return err
	}
	switch {
	case ev.ResourceType != "AuditEvent", ev.Type == nil || ev.Type.Code == "", len(ev.Agent) == 0:
		return errors.New("not an AuditEvent")
	}
	if _, err := time.Parse(time.RFC3339Nano, ev.Recorded); err != nil {
		return err
	}
	switch ev.Action {
	case "C", "R", "U", "D", "E", "":
	default:
		return errors.New("bad action")
	}
	switch ev.Outcome {
	case Success, MinorFailure, SeriousFail, "12", "":
	default:
		return errors.New("bad outcome")
	}
	return nil
}

const okLeaf = `{"resourceType":"AuditEvent","type":{"code":"rest"},"agent":[{}],"recorded":"2026-01-01T00:00:00Z","action":"R","outcome":"0"}`

// TestCheckLeafCases: what verify accepts as an AuditEvent and what it
// reports, agreeing with encoding/json except where a member name differs
// only in case (rejected here, taken by encoding/json).
func TestCheckLeafCases(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range 2000 {
		e := randomEvent(rng)
		e.Action = []string{"C", "R", "U", "D", "E", ""}[i%6]
		e.Outcome = []string{Success, MinorFailure, SeriousFail}[i%3]
		e.Interaction = []string{"read", "login"}[i%2]
		if err := checkLeaf(e.Leaf()); err != nil {
			t.Fatalf("Leaf() of %+v rejected: %v", e, err)
		}
	}
	for _, tc := range []struct {
		leaf string
		ok   bool
	}{
		{okLeaf, true},
		{" \n" + okLeaf + "\t ", true},
		{`{"resourceType":"Audit\u0045vent","type":{"code":"rest","x":[1,2.5e3,-0,true,null]},"agent":[null],"recorded":"2026-01-01T00:00:00.5+02:00","action":null,"outcome":null,"extra":{"a":{"b":[]}}}`, true},
		{`{"type":{"code":"rest"},"agent":[{}],"recorded":"2026-01-01T00:00:00Z","resourceType":"Patient","resourceType":"AuditEvent"}`, true},
		{`{}`, false},
		{`not json`, false},
		{``, false},
		{`[]`, false},
		{`null`, false},
		{okLeaf + `{}`, false},
		{okLeaf[:len(okLeaf)-1], false},
		{`{"resourceType":"Patient"}`, false},
		{`{"resourceType":"AuditEvent","type":{"code":"rest"},"agent":[{}],"recorded":"yesterday"}`, false},
		{`{"resourceType":"AuditEvent","type":{"code":"rest"},"agent":[],"recorded":"2026-01-01T00:00:00Z"}`, false},
		{`{"resourceType":"AuditEvent","type":{"code":"rest"},"agent":[{}],"agent":null,"recorded":"2026-01-01T00:00:00Z"}`, false},
		{`{"resourceType":"AuditEvent","type":{"code":""},"agent":[{}],"recorded":"2026-01-01T00:00:00Z"}`, false},
		{`{"resourceType":"AuditEvent","type":"rest","agent":[{}],"recorded":"2026-01-01T00:00:00Z"}`, false},
		{`{"resourceType":"AuditEvent","type":{"code":"rest"},"agent":{},"recorded":"2026-01-01T00:00:00Z"}`, false},
		{`{"resourceType":"AuditEvent","type":{"code":"rest"},"agent":[{}],"recorded":"2026-01-01T00:00:00Z","action":"X"}`, false},
		{`{"resourceType":"AuditEvent","type":{"code":"rest"},"agent":[{}],"recorded":"2026-01-01T00:00:00Z","outcome":0}`, false},
		{`{"resourceType":"AuditEvent","type":{"code":"rest"},"agent":[{}],"recorded":"2026-01-01T00:00:00Z","x":01}`, false},
		{`{"resourceType":"AuditEvent","type":{"code":"rest"},"agent":[{}],"recorded":"2026-01-01T00:00:00Z","x":"a` + "\x01" + `"}`, false},
		{`{"resourceType":"AuditEvent","type":{"code":"rest"},"agent":[{}],"recorded":"2026-01-01T00:00:00Z","x":"\q"}`, false},
		{`{"resourceType":"AuditEvent","type":{"code":"rest"},"agent":[{}],"recorded":"2026-01-01T00:00:00Z","x":tru}`, false},
		{`{"resourceType":"AuditEvent","type":{"code":"rest"},"agent":[{}],"recorded":"2026-01-01T00:00:00Z",}`, false},
	} {
		err, ref := checkLeaf([]byte(tc.leaf)), checkLeafJSON([]byte(tc.leaf))
		if (err == nil) != tc.ok || (ref == nil) != tc.ok {
			t.Errorf("%s: checkLeaf %v, encoding/json %v; want ok=%v", tc.leaf, err, ref, tc.ok)
		}
	}
	// A member name in another case: encoding/json takes it, verify does not.
	variant := `{"resourcetype":"AuditEvent","type":{"code":"rest"},"agent":[{}],"recorded":"2026-01-01T00:00:00Z"}`
	if checkLeaf([]byte(variant)) == nil {
		t.Errorf("checkLeaf accepted a member name in the wrong case")
	}
}

// FuzzCheckLeaf: checkLeaf never accepts what encoding/json rejects.
func FuzzCheckLeaf(f *testing.F) {
	f.Add([]byte(okLeaf))
	f.Add(testEvent(1).Leaf())
	f.Add([]byte(`{"resourceType":"AuditEvent","resourceType":null,"Type":{"CODE":"x"},"type":null,"agent":[1,"2",{"a":[]}]}`))
	f.Fuzz(func(t *testing.T, leaf []byte) {
		if checkLeaf(leaf) == nil {
			if err := checkLeafJSON(leaf); err != nil {
				t.Fatalf("checkLeaf accepted %q, encoding/json: %v", leaf, err)
			}
		}
	})
}

// BenchmarkCheckLeaf compares the check with its encoding/json reference.
func BenchmarkCheckLeaf(b *testing.B) {
	leaf := testEvent(1).Leaf()
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			if checkLeaf(leaf) != nil {
				b.Fatal("rejected")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if checkLeafJSON(leaf) != nil {
				b.Fatal("rejected")
			}
		}
	})
}
