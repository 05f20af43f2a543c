package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/phivault/phivault/internal/store"
	"golang.org/x/mod/sumdb/note"
)

// Witness receives each new signed checkpoint, so that a later rollback of
// the whole log (replaced by an older copy) can be detected against a copy
// the log's operator cannot rewrite.
//
// Publish must be safe for concurrent use and may be called again with the
// same checkpoint after an error. An error is logged and does not stop the
// log; the next checkpoint is published regardless.
type Witness interface {
	Publish(ctx context.Context, checkpoint []byte) error
}

// FileWitness appends each checkpoint to a file, which should be outside
// the data directory (another disk, a WORM mount, a synced folder). The
// file is a concatenation of signed notes; read it with SplitNotes or pass
// it to VerifyAgainst.
type FileWitness struct {
	Path string
	mu   sync.Mutex
}

var _ Witness = (*FileWitness)(nil)

// Publish appends checkpoint to the file and syncs it.
func (w *FileWitness) Publish(_ context.Context, checkpoint []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	f, err := os.OpenFile(w.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit: witness file: %w", err)
	}
	_, err = f.Write(checkpoint)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("audit: witness file: %w", err)
	}
	return nil
}

// CheckpointerOptions configure a Checkpointer. Zero values are defaults.
type CheckpointerOptions struct {
	Interval  time.Duration // between checkpoints while leaves arrive; default and maximum 1s
	Witnesses []Witness
	Logger    *slog.Logger  // default slog.Default()
	Timeout   time.Duration // per checkpoint and per witness publish; default 10s
	// Verifier checks the latest stored checkpoint before its size is
	// trusted. Default: re-signing and comparing, which is right for
	// deterministic signers such as note's Ed25519.
	Verifier note.Verifier
}

// Checkpointer integrates new leaves and signs a checkpoint for them at
// least every Interval while leaves arrive, stores it under
// audit/checkpoint/<size> and as the latest checkpoint, then publishes it
// to the witnesses. Nothing is signed while the log does not grow.
type Checkpointer struct {
	st   store.Backend
	in   *Integrator
	sig  note.Signer
	opts CheckpointerOptions

	mu      sync.Mutex // serialises Checkpoint
	running sync.Mutex // guards cancel and done
	cancel  context.CancelFunc
	done    chan struct{}
}

// NewCheckpointer returns a Checkpointer signing with s; the checkpoints'
// origin is s.Name().
func NewCheckpointer(st store.Backend, in *Integrator, s note.Signer, opts CheckpointerOptions) *Checkpointer {
	if opts.Interval <= 0 || opts.Interval > time.Second {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Verifier == nil {
		opts.Verifier = selfVerifier{s}
	}
	return &Checkpointer{st: st, in: in, sig: s, opts: opts}
}

// Checkpoint integrates pending leaves and, if the tree grew since the
// latest checkpoint, signs, stores and publishes a new one. It returns the
// latest signed checkpoint (nil while the log is empty).
func (c *Checkpointer) Checkpoint(ctx context.Context) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := c.in.Integrate(ctx)
	if err != nil {
		return nil, err
	}
	var latest []byte
	var size uint64
	err = c.st.View(ctx, func(r store.Reader) error {
		b, err := r.Meta(keyLatest)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		latest = b
		n, err := note.Open(b, note.VerifierList(c.opts.Verifier))
		if err != nil {
			return fmt.Errorf("audit: latest checkpoint does not verify with the signing key: %w", err)
		}
		cp, err := ParseCheckpoint(n.Text)
		size = cp.Size
		return err
	})
	if err != nil {
		return nil, err
	}
	if t.Size == 0 || (latest != nil && t.Size <= size) {
		return latest, nil
	}
	signed, err := SignCheckpoint(Checkpoint{Origin: c.sig.Name(), Size: t.Size, Root: t.Root}, c.sig)
	if err != nil {
		return nil, err
	}
	if err := c.st.Update(ctx, func(w store.Writer) error {
		if err := w.CreateMeta(checkpointKey(t.Size), signed); err != nil {
			return err
		}
		return w.SetMeta(keyLatest, signed)
	}); err != nil {
		return nil, fmt.Errorf("audit: store checkpoint: %w", err)
	}
	c.publish(ctx, signed)
	return signed, nil
}

func (c *Checkpointer) publish(ctx context.Context, signed []byte) {
	for _, w := range c.opts.Witnesses {
		wctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
		if err := w.Publish(wctx, signed); err != nil {
			c.opts.Logger.Warn("audit: witness publish failed", "err", err)
		}
		cancel()
	}
}

// Start runs Checkpoint every Interval in a goroutine until ctx ends or
// Stop is called. Errors are logged and retried at the next tick. Start
// on a running Checkpointer does nothing.
func (c *Checkpointer) Start(ctx context.Context) {
	c.running.Lock()
	defer c.running.Unlock()
	if c.done != nil {
		return
	}
	ctx, c.cancel = context.WithCancel(ctx)
	c.done = make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		tick := time.NewTicker(c.opts.Interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			cctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
			if _, err := c.Checkpoint(cctx); err != nil && ctx.Err() == nil {
				c.opts.Logger.Error("audit: checkpoint failed", "err", err)
			}
			cancel()
		}
	}(c.done)
}

// Stop ends the goroutine started by Start, waits for it, and signs a
// final checkpoint covering every leaf appended so far (bounded by
// Timeout), so a clean shutdown leaves no unsigned tail.
func (c *Checkpointer) Stop() error {
	c.running.Lock()
	if c.done != nil {
		c.cancel()
		<-c.done
		c.done, c.cancel = nil, nil
	}
	c.running.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	_, err := c.Checkpoint(ctx)
	return err
}

// selfVerifier verifies the signer's own signatures by re-signing.
type selfVerifier struct{ s note.Signer }

func (v selfVerifier) Name() string    { return v.s.Name() }
func (v selfVerifier) KeyHash() uint32 { return v.s.KeyHash() }

// Verify re-signs msg and compares: Ed25519 signatures are deterministic.
func (v selfVerifier) Verify(msg, sig []byte) bool {
	want, err := v.s.Sign(msg)
	return err == nil && string(want) == string(sig)
}
