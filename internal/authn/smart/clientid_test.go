package smart

import (
	"regexp"
	"testing"
)

// Client ids are typed on command lines ('phivault client remove ID'): one
// that started with "-" would be taken for a flag. They are 26 characters
// of lower-case base32 (128 random bits), never repeated.
func TestClientIDs(t *testing.T) {
	re := regexp.MustCompile(`^[a-z2-7]{26}$`)
	seen := map[string]bool{}
	for range 2000 {
		id := clientID()
		if !re.MatchString(id) {
			t.Fatalf("client id %q is not 26 characters of lower-case base32", id)
		}
		if seen[id] {
			t.Fatalf("client id %q repeated", id)
		}
		seen[id] = true
	}
}
