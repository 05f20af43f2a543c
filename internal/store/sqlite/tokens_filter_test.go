package sqlite

import (
	"math/rand/v2"
	"testing"

	"github.com/phivault/phivault/internal/store"
)

// TestTokenFilter: find answers as the positions map does, for tokens in
// the set (the first position of a repeated one), random tokens outside
// it, tokens sharing a set member's first two bytes, and tokens shorter
// than two bytes.
func TestTokenFilter(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	random := func(n int) store.Token {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return b
	}
	among := []store.Token{store.Token(""), store.Token("a"), store.Token("ab"), store.Token("abc")}
	for range 200 {
		among = append(among, random(16))
	}
	among = append(among, among[10], among[4]) // repeats keep the first position
	f := newTokenFilter(among)
	want := store.TokenPositions(among)
	probes := append([]store.Token{store.Token("abd"), store.Token("b"), store.Token("ac")}, among...)
	for _, m := range among[4:20] {
		probes = append(probes, append(append(store.Token{}, m[:2]...), random(14)...)) // same first bytes
	}
	for range 100_000 {
		probes = append(probes, random(1+r.IntN(20)))
	}
	hits := 0
	for _, p := range probes {
		got, ok := f.find(p)
		w, wok := want[string(p)]
		if ok != wok || got != w {
			t.Fatalf("find(%x) = %d %v, want %d %v", p, got, ok, w, wok)
		}
		if ok {
			hits++
		}
	}
	if hits < len(among) {
		t.Fatalf("%d hits, want at least %d", hits, len(among))
	}
}

// TestFilterOfFollowsTheSet: the filter remembered for a set answers for
// the set asked about now, not for another one with the same first token,
// nor for the set's old contents after the caller changed a token in place.
func TestFilterOfFollowsTheSet(t *testing.T) {
	tok := func(s string) store.Token { return store.Token(s) }
	a := []store.Token{tok("first"), tok("y2020"), tok("y2021")}
	b := []store.Token{tok("first"), tok("y2019")}
	for range 2 {
		for _, c := range []struct {
			among []store.Token
			probe string
			pos   int
			ok    bool
		}{
			{a, "y2021", 2, true}, {a, "y2019", 0, false},
			{b, "y2019", 1, true}, {b, "y2021", 0, false},
		} {
			if pos, ok := filterOf(c.among).find(tok(c.probe)); pos != c.pos || ok != c.ok {
				t.Fatalf("set %s, %s: %d %v, want %d %v", c.among, c.probe, pos, ok, c.pos, c.ok)
			}
		}
	}
	if filterOf(a) != filterOf(a) {
		t.Error("the same set's filter was built again")
	}
	copy(a[2], "y2022") // changed in place
	if _, ok := filterOf(a).find(tok("y2021")); ok {
		t.Error("the filter answered for the set's old contents")
	}
	if pos, ok := filterOf(a).find(tok("y2022")); !ok || pos != 2 {
		t.Errorf("y2022: %d %v", pos, ok)
	}
}
