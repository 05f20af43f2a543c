package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/phivault/phivault/internal/store"
	"github.com/phivault/phivault/internal/store/postgres"
	"github.com/phivault/phivault/internal/store/postgres/pgtest"
)

// TestNotifyChanges: a write of a watched metadata key on one node reaches
// another node's Listen with its key, only once it committed; unwatched
// keys, failed fns and other schemas send nothing; a listener whose
// connection was cut reconnects and says that it may have missed changes.
func TestNotifyChanges(t *testing.T) {
	const app = "phivault-notify-test"
	dsn := pgtest.WithParam(pgtest.DSN(t), "application_name", app)
	a, b := open(t, dsn), open(t, dsn)
	other := open(t, pgtest.DSN(t)) // another installation, same database
	for _, n := range []*postgres.Backend{a, b, other} {
		t.Cleanup(func() { n.Close() })
	}
	for _, n := range []*postgres.Backend{a, other} {
		n.NotifyChanges("account/", "session/")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Listen(ctx, slog.New(slog.DiscardHandler), func(k string) { got <- k })
	}()
	defer func() { cancel(); <-done }()

	update := func(n *postgres.Backend, fn func(w store.Writer) error) error {
		return n.Update(context.Background(), fn)
	}
	// Until the listener is listening, notifications are not queued for
	// it: send one until it arrives.
	deadline := time.Now().Add(10 * time.Second)
	for ready := false; !ready; {
		if err := update(a, func(w store.Writer) error { return w.SetMeta("account/warmup", []byte("x")) }); err != nil {
			t.Fatal(err)
		}
		select {
		case k := <-got:
			ready = k == "account/warmup"
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no notification within 10s")
		}
	}
	for len(got) > 0 {
		<-got
	}

	errFn := errors.New("fn fails")
	steps := []func(w store.Writer) error{
		func(w store.Writer) error { return w.SetMeta("other/x", []byte("1")) },               // not watched
		func(w store.Writer) error { w.SetMeta("account/failed", []byte("1")); return errFn }, // rolled back
		func(w store.Writer) error { return w.CreateMeta("session/s1", []byte("1")) },
		func(w store.Writer) error { return w.DeleteMeta("account/warmup") },
	}
	for i, fn := range steps {
		if err := update(a, fn); err != nil && !errors.Is(err, errFn) {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	// A group where one fn fails and another succeeds: only the second's
	// notification is delivered.
	errc := make(chan error, 2)
	go func() {
		errc <- update(a, func(w store.Writer) error { w.SetMeta("account/failed-in-group", []byte("1")); return errFn })
	}()
	go func() {
		errc <- update(a, func(w store.Writer) error { return w.SetMeta("account/kept-in-group", []byte("1")) })
	}()
	<-errc
	<-errc
	if err := update(other, func(w store.Writer) error { return w.SetMeta("account/other-schema", []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	if err := update(b, func(w store.Writer) error { return w.SetMeta("account/by-b", []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	if err := update(a, func(w store.Writer) error { return w.SetMeta("account/last", []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := ""; k != "account/last"; {
		select {
		case k = <-got:
			keys = append(keys, k)
		case <-time.After(10 * time.Second):
			t.Fatalf("notifications so far %q; account/last did not arrive", keys)
		}
	}
	want := map[string]bool{"session/s1": true, "account/warmup": true, "account/kept-in-group": true, "account/last": true}
	for _, k := range keys {
		if !want[k] {
			t.Errorf("notification %q: not a committed write of a watched key of this schema by a notifying node", k)
		}
		delete(want, k)
	}
	if len(want) != 0 {
		t.Errorf("missing notifications %v (got %q)", want, keys)
	}

	// Cut the listener's connection: it reconnects and reports "".
	pgtest.Exec(t, pgtest.AdminDSN(t), fmt.Sprintf(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = '%s' AND query LIKE 'LISTEN%%'`, app))
	select {
	case k := <-got:
		if k != "" {
			t.Errorf("after the cut: %q, want \"\" (changes may have been missed)", k)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the listener did not come back within 10s")
	}
	if err := update(a, func(w store.Writer) error { return w.SetMeta("account/after-cut", []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	select {
	case k := <-got:
		if k != "account/after-cut" {
			t.Errorf("after reconnecting: %q", k)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification after reconnecting")
	}
}
