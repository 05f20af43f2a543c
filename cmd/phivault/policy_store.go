package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/store"
)

// policyMeta is the metadata key of the store's Cedar policy set: one set
// for every node sharing the store. The value is the set sealed by the
// barrier (the "system" key, bound to this key): the policy text is not
// patient data, but everything at rest is encrypted. Writes of the key
// notify the other nodes on PostgreSQL (watchChanges).
const policyMeta = "policy/set"

// policyPollInterval is how often a node of a cluster re-reads the
// store's set, so that a missed notification is healed within seconds.
const policyPollInterval = 2 * time.Second

func policyContext() []byte { return barrier.Context("policy", policyMeta) }

// policySum identifies one stored version of the set: the hash of its
// sealed value (each write seals afresh, so each write has its own sum).
type policySum [sha256.Size]byte

// storedPolicy returns the store's policy set, and its sum; found is false
// when the store holds none (a store from before sets were kept there).
func (n *node) storedPolicy(ctx context.Context) (src []byte, sum policySum, found bool, err error) {
	var sealed []byte
	err = n.db.View(ctx, func(r store.Reader) error {
		var err error
		sealed, err = r.Meta(policyMeta)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, sum, false, nil
	}
	if err != nil {
		return nil, sum, false, err
	}
	sum = sha256.Sum256(sealed)
	if src, err = n.barrier.Open(ctx, policyContext(), sealed); err != nil {
		return nil, sum, false, fmt.Errorf("the stored policy set: %w", err)
	}
	return src, sum, true, nil
}

// savePolicy seals src and makes it the store's policy set; it returns
// the sum of what it stored.
func (n *node) savePolicy(ctx context.Context, src []byte) (policySum, error) {
	sealed, err := n.barrier.Seal(ctx, "system", policyContext(), src)
	if err != nil {
		return policySum{}, err
	}
	err = n.db.Update(ctx, func(tx store.Writer) error { return tx.SetMeta(policyMeta, sealed) })
	return sha256.Sum256(sealed), err
}

// policySource returns the set a node enforces when it opens and where it
// comes from (for messages): the store's set; if the store holds none,
// DIR/policy.cedar when that file exists (an installation from before sets
// were kept in the store; the next 'policy set' or 'policy reset' writes
// the store, which wins from then on); else the shipped default.
func (n *node) policySource(ctx context.Context) (src []byte, from string, sum policySum, err error) {
	src, sum, found, err := n.storedPolicy(ctx)
	if err != nil || found {
		return src, "the store", sum, err
	}
	path := filepath.Join(n.dir, policyFileName)
	if b, err := os.ReadFile(path); err == nil {
		return b, path, sum, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, path, sum, err
	}
	return policy.DefaultPolicies(), "the shipped default", sum, nil
}

// policyLoadError is openPolicyAt's error when the set it found does not
// load: 'policy set' and 'policy reset' can still replace it (see
// openNodeForPolicy).
type policyLoadError struct{ err error }

func (e policyLoadError) Error() string { return e.err.Error() }
func (e policyLoadError) Unwrap() error { return e.err }

// openNodeForPolicy is openNode for installing a policy set: when the set
// the node would enforce is what does not load, it returns the node opened
// up to its policy engine (n.policy nil, the barrier, audit log and store
// open), so that a valid set can replace the broken one.
func openNodeForPolicy(ctx context.Context, dir string, stderr io.Writer) (*node, error) {
	return openNodeIf(ctx, dir, slog.New(slog.DiscardHandler), stderr, func(n *node, err error) bool {
		var pe policyLoadError
		return errors.As(err, &pe) && n.barrier != nil && n.audit != nil
	})
}

// policySync keeps one serving node's engine on the store's set: reload
// re-reads the set and swaps it in when it changed since the node last
// loaded or installed it.
type policySync struct {
	n  *node
	mu sync.Mutex
	// sum is that of the stored set the engine holds (zero: it holds the
	// file's or the default set, the store having none).
	sum policySum
}

// registerPolicySync records that n's engine holds the stored set of sum
// (n.polSync, which watchChanges keeps current on a cluster).
func (n *node) registerPolicySync(sum policySum) {
	if n.polSync == nil {
		n.polSync = &policySync{n: n}
	}
	n.polSync.mu.Lock()
	n.polSync.sum = sum
	n.polSync.mu.Unlock()
}

// reload swaps the store's set into the engine if it changed. A set that
// does not load leaves the working one in force and logs an error (never
// the policy text); a store that has no set changes nothing.
func (s *policySync) reload(ctx context.Context, log *slog.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src, sum, found, err := s.n.storedPolicy(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		return
	case err != nil:
		log.Error("policy: cannot read the cluster's policy set; the one in force stays", "err", err.Error())
		return
	case !found || sum == s.sum:
		return
	}
	if err := s.n.policy.Replace(src); err != nil {
		log.Error("policy: the cluster's policy set does not load on this node; the one in force stays",
			"err", oneLine(err), "hint", "install a valid set with 'phivault policy set'")
		return
	}
	s.sum = sum
	log.Info("policy: the cluster's policy set changed; now in force on this node")
}
