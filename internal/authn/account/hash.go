package account

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argonParams are Argon2id cost parameters. Memory is in KiB.
type argonParams struct {
	Memory  uint32
	Time    uint32
	Threads uint8
}

// defaultArgon is OWASP's first recommended Argon2id setting (m=19 MiB,
// t=2, p=1); new hashes use it.
var defaultArgon = argonParams{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// Bounds a stored hash must respect before it is computed: a damaged or
// hostile record cannot make a login allocate gigabytes or spin.
const (
	maxMemory  = 1 << 20 // 1 GiB in KiB
	maxTime    = 16
	maxThreads = 16
)

var errBadHash = errors.New("account: malformed password hash")

var b64 = base64.RawStdEncoding

// hashPassword returns the PHC string of pw under a fresh random salt:
// $argon2id$v=19$m=M,t=T,p=P$SALT$HASH (unpadded standard base64).
func (d *Directory) hashPassword(pw Password, p argonParams) string {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	return formatPHC(p, salt, d.argon(pw, salt, p, keyLen))
}

func formatPHC(p argonParams, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// argon computes Argon2id; every password check goes through it (tests
// count the calls to show unknown and known users cost the same).
func (d *Directory) argon(pw Password, salt []byte, p argonParams, n int) []byte {
	if d.onHash != nil {
		d.onHash(p)
	}
	return argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(n))
}

// parsePHC parses an Argon2id PHC string, refusing parameters outside
// sane bounds.
func parsePHC(s string) (argonParams, []byte, []byte, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return argonParams{}, nil, nil, errBadHash
	}
	var p argonParams
	seen := 0
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || n == 0 || v != strconv.FormatUint(n, 10) {
			return argonParams{}, nil, nil, errBadHash
		}
		switch {
		case k == "m" && seen == 0 && n <= maxMemory:
			p.Memory = uint32(n)
		case k == "t" && seen == 1 && n <= maxTime:
			p.Time = uint32(n)
		case k == "p" && seen == 2 && n <= maxThreads:
			p.Threads = uint8(n)
		default:
			return argonParams{}, nil, nil, errBadHash
		}
		seen++
	}
	if seen != 3 || p.Memory < 8*uint32(p.Threads) {
		return argonParams{}, nil, nil, errBadHash
	}
	// The decoder skips \r and \n; a stored hash has neither.
	if strings.ContainsAny(parts[4]+parts[5], "\r\n") {
		return argonParams{}, nil, nil, errBadHash
	}
	salt, err1 := b64.Strict().DecodeString(parts[4])
	key, err2 := b64.Strict().DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(salt) > 64 || len(key) < 16 || len(key) > 64 {
		return argonParams{}, nil, nil, errBadHash
	}
	return p, salt, key, nil
}

// verify reports whether pw matches the PHC string, in constant time. A
// malformed hash matches nothing (but still costs one hash of the dummy,
// so the caller's timing does not change).
func (d *Directory) verify(pw Password, phc string) bool {
	p, salt, key, err := parsePHC(phc)
	if err != nil {
		p, salt, key, _ = parsePHC(d.dummy)
		d.argon(pw, salt, p, len(key))
		return false
	}
	got := d.argon(pw, salt, p, len(key))
	return len(got) == len(key) && subtle.ConstantTimeCompare(got, key) == 1
}
