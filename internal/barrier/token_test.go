//go:build !benchplainindex

package barrier

import (
	"bytes"
	"testing"
)

// TestTokens: index tokens are keyed (the product build).
func TestTokens(t *testing.T) {
	b, st := newBarrier(t)
	t1 := b.Token("idx", "Patient", "name", "smith")
	if len(t1) != TokenSize || TokenSize != 16 {
		t.Fatalf("token length %d", len(t1))
	}
	if !bytes.Equal(t1, b.Token("idx", "Patient", "name", "smith")) {
		t.Error("tokens are not deterministic")
	}
	if bytes.Equal(b.Token("ab", "c"), b.Token("a", "bc")) {
		t.Error(`Token("ab","c") == Token("a","bc")`)
	}
	if bytes.Equal(b.Token("x"), b.Token("x", "")) {
		t.Error(`Token("x") == Token("x","")`)
	}
	// A barrier reopened over the same store computes the same tokens, or
	// every index would be lost on restart.
	b2 := openBarrier(t, b.kek, st, 100)
	if !bytes.Equal(t1, b2.Token("idx", "Patient", "name", "smith")) {
		t.Error("reopened barrier computes other tokens")
	}
	other, _ := newBarrier(t)
	if bytes.Equal(t1, other.Token("idx", "Patient", "name", "smith")) {
		t.Error("two stores with different KEKs give equal tokens")
	}
}
