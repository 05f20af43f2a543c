package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// Sealing a cluster. Sealing is the emergency stop: an officer who seals
// one node of a cluster means every node. An operator's seal therefore
// also raises the cluster's seal epoch, a counter in the store
// (sealEpochMeta, plain metadata: a number, nothing secret). Every node
// remembers the epoch at which it was last unsealed; a node that sees a
// higher one (a PostgreSQL notification of the key, or its poll every
// sealPollInterval) seals itself the same way, audited. Each node is then
// unsealed on its own, with its shares. Nodes whose key file is not split
// cannot be sealed, here or by the cluster.
const sealEpochMeta = "cluster/seal-epoch"

// sealPollInterval is how often a node of a cluster reads the seal epoch,
// so that a missed notification still seals it within seconds.
const sealPollInterval = 2 * time.Second

// readSealEpoch returns the cluster's seal epoch (0 before any seal).
func readSealEpoch(ctx context.Context, db store.Backend) (int64, error) {
	var v []byte
	err := db.View(ctx, func(r store.Reader) error {
		var err error
		v, err = r.Meta(sealEpochMeta)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	e, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("the cluster's seal epoch %q is damaged", v)
	}
	return e, nil
}

// raiseSealEpoch increments the cluster's seal epoch and returns it.
func raiseSealEpoch(ctx context.Context, db store.Backend) (int64, error) {
	var e int64
	err := db.Update(ctx, func(w store.Writer) error {
		v, err := w.Meta(sealEpochMeta)
		switch {
		case errors.Is(err, store.ErrNotFound):
			e = 0
		case err != nil:
			return err
		default:
			if e, err = strconv.ParseInt(string(v), 10, 64); err != nil {
				return fmt.Errorf("the cluster's seal epoch %q is damaged", v)
			}
		}
		e++
		return w.SetMeta(sealEpochMeta, []byte(strconv.FormatInt(e, 10)))
	})
	return e, err
}

// noteUnsealed records the epoch this node is unsealed at. A node that
// cannot read it keeps its previous epoch: it may then seal again at its
// next check, which errs on the safe side.
func (n *node) noteUnsealed(ctx context.Context) {
	if e, err := readSealEpoch(ctx, n.db); err == nil {
		n.seal.epoch.Store(e)
	} else {
		n.log.Warn("cannot read the cluster's seal epoch after unsealing", "err", err.Error())
	}
}

// followSeal seals this node if the cluster was sealed since it was last
// unsealed. It does nothing on a node that cannot be sealed or is sealed.
func (n *node) followSeal(ctx context.Context, log *slog.Logger) {
	s := n.seal
	if s == nil || s.sealed.Load() {
		return
	}
	e, err := readSealEpoch(ctx, n.db)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("cannot read the cluster's seal epoch", "err", err.Error())
		}
		return
	}
	if e > s.epoch.Load() {
		n.sealNow(ctx, "cluster", fmt.Sprintf("keys wiped from memory: another node sealed the cluster (seal epoch %d)", e))
	}
}
