//go:build benchplainindex

package barrier

import (
	"bytes"
	"testing"
)

// TestPlainIndexTokens: in the benchmark-only build the search index tokens
// are the length-prefixed parts themselves, still unambiguous, and every
// other token stays keyed (ids and keys derived from tokens keep working).
func TestPlainIndexTokens(t *testing.T) {
	b, _ := newBarrier(t)
	got := b.Token("idx", "Patient", "name", "smith")
	want := []byte("\x00\x00\x00\x03idx\x00\x00\x00\x07Patient\x00\x00\x00\x04name\x00\x00\x00\x05smith")
	if !bytes.Equal(got, want) {
		t.Errorf("plain index token = %q, want %q", got, want)
	}
	other, _ := newBarrier(t)
	if !bytes.Equal(got, other.Token("idx", "Patient", "name", "smith")) {
		t.Error("plain index tokens depend on the key")
	}
	if bytes.Equal(b.Token("idx", "ab", "c"), b.Token("idx", "a", "bc")) {
		t.Error(`Token("idx","ab","c") == Token("idx","a","bc")`)
	}
	k := b.Token("keyname", "patient/1")
	if len(k) != TokenSize || bytes.Contains(k, []byte("patient")) {
		t.Errorf("a non-index token is not keyed: %q", k)
	}
	if bytes.Equal(k, other.Token("keyname", "patient/1")) {
		t.Error("non-index tokens of two keys are equal")
	}
	b.Close()
	if bytes.Equal(b.Token("idx", "Patient", "name", "smith"), got) {
		t.Error("a closed barrier computes index tokens")
	}
}
