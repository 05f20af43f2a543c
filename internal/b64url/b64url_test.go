package b64url

import (
	"bytes"
	"encoding/base64"
	"testing"
)

func TestDecodeAcceptsOnlyTheCanonicalSpelling(t *testing.T) {
	want := []byte("phivault\x00\xff")
	enc := base64.RawURLEncoding.EncodeToString(want) // "cGhpdmF1bHQA_w"
	if got, err := Decode(enc); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Decode(%q) = %q, %v; want %q", enc, got, err, want)
	}
	for _, s := range []string{
		enc[:4] + "\n" + enc[4:],   // line break: skipped by encoding/base64
		enc[:4] + "\r\n" + enc[4:], // CRLF
		enc + "\n",                 // trailing line break
		enc[:len(enc)-1] + "x",     // non-zero trailing bits
		enc + "==",                 // padding
		"cGhpdmF1bHQA/w",           // standard alphabet
	} {
		if got, err := Decode(s); err == nil {
			t.Errorf("Decode(%q) = %q; want an error", s, got)
		}
	}
}

// FuzzDecode: whatever Decode accepts is the canonical encoding of what it
// returns.
func FuzzDecode(f *testing.F) {
	f.Add("cGhpdmF1bHQA_w")
	f.Add("cGhp\ndmF1bHQA_w")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := Decode(s)
		if err != nil {
			return
		}
		if enc := base64.RawURLEncoding.EncodeToString(b); enc != s {
			t.Fatalf("Decode accepted %q, a spelling of %q", s, enc)
		}
	})
}
