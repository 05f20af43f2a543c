package search

import (
	"os"
	"testing"

	"github.com/phivault/phivault/internal/store/testdb"
)

// TestMain stops the PostgreSQL server that testdb may have started
// (PHIVAULT_TEST_DB=postgres runs this suite on PostgreSQL).
func TestMain(m *testing.M) {
	code := m.Run()
	testdb.Stop()
	os.Exit(code)
}
