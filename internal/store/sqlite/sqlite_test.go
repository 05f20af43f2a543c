package sqlite_test

import (
	"testing"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/sqlite"
	"github.com/phivault/phivault/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend {
		b, err := sqlite.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}
