// Package b64url decodes unpadded base64url (RFC 4648 §5) in its one
// canonical spelling, for values whose bytes are signed or sealed: a MAC
// checked over the decoded bytes then vouches for the exact text as well.
package b64url

import (
	"encoding/base64"
	"errors"
	"strings"
)

// errNotCanonical is returned for any text that EncodeToString would not
// have written.
var errNotCanonical = errors.New("not canonical unpadded base64url")

// Decode returns the bytes s encodes. It accepts s only if
// base64.RawURLEncoding.EncodeToString would give s back for them: no
// padding, no non-zero trailing bits, and no line breaks (encoding/base64
// skips '\r' and '\n' even in Strict mode, so each would give another
// spelling of the same bytes).
func Decode(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errNotCanonical
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, errNotCanonical
	}
	return b, nil
}
