package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// referenceLeaf is the leaf as encoding/json writes AuditEvent(): the
// format every stored leaf so far has, and the one readers decode.
func referenceLeaf(t testing.TB, e *Event) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e.AuditEvent()); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// awkward are strings that need escaping or are not valid UTF-8.
var awkward = []string{"", "plain", `quote " and \ backslash`, "tab\tnew\nline\rcr", "\b\f\x00\x01\x1f\x7f",
	"<html> & 'x'", "é ü 漢字 🙂", "bad \xff\xfe utf8", "\u2028\u2029 separators", "trailing \xe2\x82"}

// randomEvent fills every field, leaving some empty, from rng.
func randomEvent(rng *rand.Rand) *Event {
	str := func() string {
		if rng.IntN(3) == 0 {
			return awkward[rng.IntN(len(awkward))]
		}
		return fmt.Sprintf("v%d", rng.IntN(1000))
	}
	list := func() []string {
		var l []string
		for range rng.IntN(4) {
			l = append(l, str())
		}
		return l
	}
	return &Event{
		Time:        time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(time.FixedZone("x", 3600)),
		Interaction: []string{"read", "login", "logout", "login-failed", "search-type", str()}[rng.IntN(6)],
		Action:      str(), Outcome: str(), OutcomeDesc: str(),
		UserID: str(), Roles: list(), ClientID: str(), SourceIP: str(), UserAgent: str(), AuthMethod: str(), Purpose: str(),
		Patients: list(), Entities: list(), Query: str(),
		Allowed: rng.IntN(2) == 0, Policies: list(), BreakGlass: rng.IntN(2) == 0,
	}
}

// TestLeafMatchesEncodingJSON: Leaf writes byte for byte the JSON of
// AuditEvent(), so leaves keep their format (and their hashes) and every
// reader that decodes them keeps working.
func TestLeafMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	cases := []*Event{{}, testEvent(1), testEvent(2)}
	for range 5000 {
		cases = append(cases, randomEvent(rng))
	}
	for i, e := range cases {
		got, want := e.Leaf(), referenceLeaf(t, e)
		if !bytes.Equal(got, want) {
			t.Fatalf("event %d (%+v):\n got %s\nwant %s", i, e, got, want)
		}
	}
	var back map[string]any
	if err := json.Unmarshal(testEvent(3).Leaf(), &back); err != nil || back["resourceType"] != "AuditEvent" {
		t.Fatalf("leaf does not decode as an AuditEvent: %v %v", err, back["resourceType"])
	}
}

// TestLeafAllocatesOnce: a leaf is built in one allocation whatever the
// event's size (a search's event names every resource of its page), when
// none of its strings needs escaping.
func TestLeafAllocatesOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, n := range []int{0, 1, 20, 200} {
		e := testEvent(1)
		e.Entities, e.Patients = nil, nil
		for i := range n {
			e.Entities = append(e.Entities, fmt.Sprintf("Observation/%x/_history/%d", rng.Uint64(), i))
			if i%10 == 0 {
				e.Patients = append(e.Patients, fmt.Sprintf("%x-%x", rng.Uint64(), rng.Uint64()))
			}
		}
		if a := testing.AllocsPerRun(20, func() { e.Leaf() }); a != 1 {
			t.Errorf("%d entities: %.0f allocations a leaf", n, a)
		}
	}
}

// FuzzLeaf holds Leaf to encoding/json for arbitrary strings.
func FuzzLeaf(f *testing.F) {
	for _, s := range awkward {
		f.Add(s, s, true)
	}
	f.Fuzz(func(t *testing.T, a, b string, allowed bool) {
		e := &Event{Time: time.Unix(int64(len(a)), int64(len(b))), Interaction: a, Action: b, Outcome: a,
			OutcomeDesc: b, UserID: a, Roles: []string{a, b}, ClientID: b, SourceIP: a, UserAgent: b,
			AuthMethod: a, Purpose: b, Patients: []string{a}, Entities: []string{b, a}, Query: a,
			Allowed: allowed, Policies: []string{b}, BreakGlass: !allowed}
		if got, want := e.Leaf(), referenceLeaf(t, e); !bytes.Equal(got, want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
}

// BenchmarkLeaf compares Leaf with encoding/json of AuditEvent().
func BenchmarkLeaf(b *testing.B) {
	e := testEvent(1)
	e.Query = strings.Repeat("ab", 32)
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = e.Leaf()
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = referenceLeaf(b, e)
		}
	})
}
