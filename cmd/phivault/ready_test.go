package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/phivault/phivault/internal/store/sqlite"
)

// TestReadyz: /readyz answers 200 while the store answers, and 503 (with
// nothing of the error) once it does not.
func TestReadyz(t *testing.T) {
	db, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n := &node{db: db, log: slog.New(slog.DiscardHandler)}
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		n.readyHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		b, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(b)
	}
	if code, body := get(); code != http.StatusOK || body != "ready\n" {
		t.Errorf("open store: %d %q, want 200 ready", code, body)
	}
	db.Close()
	if code, body := get(); code != http.StatusServiceUnavailable || body != "not ready: the database does not answer\n" {
		t.Errorf("closed store: %d %q, want 503", code, body)
	}
}
