package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/phivault/phivault/internal/keys/pkcs11"
	"github.com/phivault/phivault/internal/store/postgres"
)

// rotation is a node's KEK rotation: one at a time, and its progress for
// 'phivault keys status' while it runs and after it ends.
type rotation struct {
	run sync.Mutex // held for the whole rotation

	mu       sync.Mutex // guards the fields below
	version  int        // the KEK version the keys are rewrapped under
	started  time.Time
	finished time.Time // zero while running
	pass     int       // 1, then 2 (keys created during the first pass)
	done     int       // keys rewrapped, all passes
	todo     int       // keys to rewrap, as known so far
	failed   string    // why it stopped, if it did

	hook func(done, todo int) // tests: called on every progress report
}

// rotationAllowed refuses an online rotation on a PostgreSQL store with a
// key-file KEK unless the operator confirms that no other node shares the
// store: the other nodes hold their own copies of the key file, so they
// could not unwrap the data keys rewrapped under the new version, nor
// would they wrap new keys under it. The procedure (docs/keys.md): stop
// the other nodes, rotate on one (which goes on serving), copy its key
// file to the others, start them. A PKCS#11 KEK is shared by every node
// through the token, and its providers follow versions made elsewhere
// (pkcs11.RefreshEvery): it rotates online (see rotate).
func (n *node) rotationAllowed(nodesStopped bool) error {
	if !n.sharedStore() || nodesStopped {
		return nil
	}
	if _, hsm, _ := readKEKConfig(n.dir); hsm {
		return nil
	}
	return fail(exitFail, "this store is PostgreSQL, which other nodes may share: they could not use a KEK version only this node's key file holds",
		"stop every other node, then run 'phivault keys rotate --nodes-stopped' here; copy the key file to the others before they start (docs/keys.md)")
}

// sharedStore reports whether other nodes may share this node's store.
func (n *node) sharedStore() bool {
	_, pg := n.db.(*postgres.Backend)
	return pg
}

// rotate adds a KEK version and rewraps every data key under it while the
// node serves; it returns the rotation's summary line.
func (n *node) rotate(ctx context.Context, f rotatingKEK, by string) (string, error) {
	r := &n.rot
	if !r.run.TryLock() {
		return "", fail(exitFail, "a key rotation is already running", "follow it with 'phivault keys status'")
	}
	defer r.run.Unlock()
	v, err := f.Rotate()
	if err != nil {
		return "", fmt.Errorf("add a KEK version: %w", err)
	}
	r.mu.Lock()
	r.version, r.started, r.finished, r.pass, r.done, r.todo, r.failed = v, time.Now(), time.Time{}, 0, 0, 0, ""
	r.mu.Unlock()
	rotated := time.Now()
	total := 0
	for pass := 1; pass <= 2; pass++ { // a second pass catches keys created during the first
		if pass == 2 && n.sharedStore() {
			// Other nodes sharing the token may wrap new keys under the
			// old version until their list of versions is refreshed: the
			// second pass starts after that, so it catches them all.
			time.Sleep(time.Until(rotated.Add(pkcs11.RefreshEvery + time.Second)))
		}
		base := total
		r.mu.Lock()
		r.pass = pass
		r.mu.Unlock()
		k, err := n.barrier.RewrapProgress(ctx, func(done, todo int) {
			r.mu.Lock()
			r.done, r.todo = base+done, base+todo
			hook := r.hook
			r.mu.Unlock()
			if hook != nil {
				hook(base+done, base+todo)
			}
		})
		total += k
		if err != nil {
			msg := fmt.Sprintf("KEK version %d added, but rewrapping stopped after %d data keys: %v", v, total, err)
			r.end(msg)
			return "", fail(exitFail, msg, "run 'phivault keys rotate' again")
		}
	}
	if err := n.auditKeys(ctx, by, "key-rotate", fmt.Sprintf("KEK version %d; %d data keys rewrapped", v, total)); err != nil {
		r.end("the audit record could not be written: " + err.Error())
		return "", err
	}
	r.end("")
	r.mu.Lock()
	took := r.finished.Sub(r.started)
	r.mu.Unlock()
	return fmt.Sprintf("KEK version %d created; %d data keys rewrapped in %s\n", v, total, took.Round(time.Millisecond)), nil
}

func (r *rotation) end(failed string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished, r.failed = time.Now(), failed
}

// report is the status line of the running or last rotation, "" if none
// ran since the node opened.
func (r *rotation) report() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	switch {
	case r.started.IsZero():
		return ""
	case r.finished.IsZero():
		pct := 100
		if r.todo > 0 {
			pct = r.done * 100 / r.todo
		}
		fmt.Fprintf(&b, "rotation to version %d RUNNING (pass %d of 2) since %s: %d of %d data keys rewrapped (%d%%)\n",
			r.version, r.pass, r.started.UTC().Format(time.TimeOnly), r.done, r.todo, pct)
	case r.failed != "":
		fmt.Fprintf(&b, "last rotation (to version %d) FAILED at %s: %s\n", r.version, r.finished.UTC().Format(time.DateTime), r.failed)
	default:
		fmt.Fprintf(&b, "last rotation: to version %d, %d data keys rewrapped in %s, finished %s UTC\n",
			r.version, r.done, r.finished.Sub(r.started).Round(time.Millisecond), r.finished.UTC().Format(time.DateTime))
	}
	return b.String()
}
