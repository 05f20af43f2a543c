package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// Shamir secret sharing over GF(2^8) with the AES polynomial
// x^8+x^4+x^3+x+1, byte by byte: share i holds f_b(i) for a random
// polynomial f_b of degree threshold-1 with f_b(0) = secret byte b. Any
// threshold shares give the secret by Lagrange interpolation at 0; fewer
// give no information about it.

// Errors of secret sharing.
var (
	ErrMalformedShare = errors.New("keys: malformed share (typo? a share is the whole pvs1-... line)")
	ErrWrongShares    = errors.New("keys: the shares do not open the key file (at least one of them is wrong)")
	ErrDuplicateShare = errors.New("keys: this share was already given")
)

var gfExp, gfLog = gfTables()

func gfTables() (exp [510]byte, log [256]byte) {
	x := byte(1)
	for i := range 255 {
		exp[i], exp[i+255] = x, x
		log[x] = byte(i)
		x = gfMulSlow(x, 3) // 3 generates the multiplicative group
	}
	return exp, log
}

// gfMulSlow multiplies in GF(2^8) bit by bit (used to build the tables and
// to check them).
func gfMulSlow(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		hi := a & 0x80
		a <<= 1
		if hi != 0 {
			a ^= 0x1b
		}
		b >>= 1
	}
	return p
}

func gfMul(a, b byte) byte {
	if a == 0 || b == 0 {
		return 0
	}
	return gfExp[int(gfLog[a])+int(gfLog[b])]
}

func gfDiv(a, b byte) byte {
	if b == 0 {
		panic("keys: division by zero in GF(256)")
	}
	if a == 0 {
		return 0
	}
	return gfExp[int(gfLog[a])+255-int(gfLog[b])]
}

// shamirSplit splits secret into n shares (x = 1..n) of which any t
// recover it. Each share is its x coordinate followed by len(secret) bytes.
func shamirSplit(secret []byte, n, t int) ([][]byte, error) {
	if t < 2 || n < t || n > 255 {
		return nil, fmt.Errorf("keys: need 2 <= threshold <= shares <= 255 (got %d of %d)", t, n)
	}
	shares := make([][]byte, n)
	for i := range shares {
		shares[i] = make([]byte, 1+len(secret))
		shares[i][0] = byte(i + 1)
	}
	coef := make([]byte, t)
	for b, s := range secret {
		coef[0] = s
		rand.Read(coef[1:])
		for i := range shares {
			x := shares[i][0]
			var y byte // Horner
			for k := t - 1; k >= 0; k-- {
				y = gfMul(y, x) ^ coef[k]
			}
			shares[i][1+b] = y
		}
	}
	clear(coef)
	return shares, nil
}

// shamirCombine recovers the secret from shares made by shamirSplit.
// Given fewer than the threshold, or a wrong share, it returns a wrong
// secret: the caller authenticates the result.
func shamirCombine(shares [][]byte) ([]byte, error) {
	if len(shares) < 2 {
		return nil, errors.New("keys: need at least two shares")
	}
	size := len(shares[0])
	seen := map[byte]bool{}
	for _, s := range shares {
		if len(s) != size || size < 2 || s[0] == 0 || seen[s[0]] {
			return nil, ErrMalformedShare
		}
		seen[s[0]] = true
	}
	out := make([]byte, size-1)
	for i, si := range shares {
		// Lagrange basis at 0: prod_{j != i} x_j / (x_j - x_i); minus is xor.
		l := byte(1)
		for j, sj := range shares {
			if i != j {
				l = gfMul(l, gfDiv(sj[0], sj[0]^si[0]))
			}
		}
		for b := range out {
			out[b] ^= gfMul(l, si[1+b])
		}
	}
	return out, nil
}

// Share text: "pvs1-" and lower-case base32 (no padding) of
// threshold || x || y || check, check being the first 4 bytes of
// SHA-256("phivault-share-1" || threshold || x || y). The check catches
// typing mistakes in one share; a well-formed but wrong share is only
// found when the shares are combined (the key file does not open), and
// then nothing says which share was wrong.
const sharePrefix = "pvs1-"

var shareEnc = base32.StdEncoding.WithPadding(base32.NoPadding)

func shareCheck(body []byte) []byte {
	h := sha256.New()
	h.Write([]byte("phivault-share-1"))
	h.Write(body)
	return h.Sum(nil)[:4]
}

func encodeShare(threshold int, share []byte) Secret {
	body := append([]byte{byte(threshold)}, share...)
	body = append(body, shareCheck(body)...)
	s := sharePrefix + strings.ToLower(shareEnc.EncodeToString(body))
	clear(body)
	return Secret(s)
}

// decodeShare parses a share's text and returns its threshold and the
// share (x || y).
func decodeShare(text string) (int, []byte, error) {
	text = strings.Join(strings.Fields(text), "") // tolerate spaces and line breaks
	rest, ok := strings.CutPrefix(strings.ToLower(text), sharePrefix)
	if !ok {
		return 0, nil, ErrMalformedShare
	}
	body, err := shareEnc.DecodeString(strings.ToUpper(rest))
	// Only the canonical spelling: the last character's unused bits are zero.
	if err != nil || len(body) < 1+1+1+4 || shareEnc.EncodeToString(body) != strings.ToUpper(rest) {
		return 0, nil, ErrMalformedShare
	}
	n := len(body) - 4
	if subtle.ConstantTimeCompare(shareCheck(body[:n]), body[n:]) != 1 || body[1] == 0 || body[0] < 2 {
		return 0, nil, ErrMalformedShare
	}
	return int(body[0]), body[1:n], nil
}
