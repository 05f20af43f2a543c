package detect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/barrier"
	"github.com/phivault/phivault/internal/store"
)

// The outbox: every alert that is new or gained a rule gets an entry,
// written in the transaction that stores the alert. Each channel (webhook,
// email, syslog) follows the outbox from its own cursor, so an alert is
// routed even if the channel was down when it was raised, or phivault
// stopped before sending it.
const (
	outboxPrefix      = "detect/outbox/"
	outboxHeadKey     = "detect/outbox-head"
	routeCursorPrefix = "detect/route-cursor/"
	outboxKeep        = 10_000 // entries kept behind the head whatever the cursors say
	defaultMaxBackoff = time.Minute
)

// Delivery is one alert to route: the outbox entry's sequence number and
// the alert as stored when it is sent.
type Delivery struct {
	Seq   uint64
	Alert *StoredAlert
}

// MessageID is the delivery's stable id, the same each time the entry is
// sent again (after a failure or a restart): receivers drop duplicates by
// it. It names the alert and the entry, nothing else.
func (d *Delivery) MessageID() string { return d.Alert.ID + "." + strconv.FormatUint(d.Seq, 10) }

// Channel delivers alerts to one destination.
type Channel interface {
	// Deliver sends d and returns nil once it was handed over. It is
	// called from one goroutine, in outbox order; after an error the same
	// delivery is tried again later (at least once, never skipped).
	Deliver(ctx context.Context, d *Delivery) error
}

// Flusher is a Channel that may hold deliveries it has handed over but not
// yet seen confirmed (a stream without acknowledgements). The Router calls
// Flush, from Deliver's goroutine, after each pass over the outbox and at
// every poll, so that those are sent again if the connection broke even
// when no new alert comes; an error is retried like a failed delivery.
type Flusher interface {
	Flush(ctx context.Context) error
}

func outboxKey(seq uint64) string { return fmt.Sprintf("%s%020d", outboxPrefix, seq) }

type outboxEntry struct {
	Alert string `json:"alert"`
}

// enqueue appends one outbox entry per alert, inside commit's transaction.
// The entry holds only the alert id, sealed.
func (s *AlertStore) enqueue(ctx context.Context, w store.Writer, changed []*StoredAlert) error {
	if len(changed) == 0 {
		return nil
	}
	head, err := readUint(w, outboxHeadKey)
	if err != nil {
		return err
	}
	for _, a := range changed {
		k := outboxKey(head)
		pt, _ := json.Marshal(outboxEntry{Alert: a.ID})
		sealed, err := s.b.Seal(ctx, alertKeyName, barrier.Context("outbox", k), pt)
		if err != nil {
			return err
		}
		if err := w.SetMeta(k, sealed); err != nil {
			return err
		}
		head++
	}
	return w.SetMeta(outboxHeadKey, []byte(strconv.FormatUint(head, 10)))
}

func readUint(r store.Reader, key string) (uint64, error) {
	v, err := r.Meta(key)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(v), 10, 64)
}

// RouterConfig configures a Router.
type RouterConfig struct {
	Alerts  *AlertStore
	Name    string // the channel's name, which keys its cursor: "webhook", "email", "syslog"
	Channel Channel
	// Poll is how often the outbox is read without a Wake; default 5 s.
	Poll time.Duration
	// MaxBackoff is the longest pause between attempts after failures;
	// the first retry comes after 250 ms, then twice as late each time.
	// Default 1 minute.
	MaxBackoff time.Duration
	Logger     *slog.Logger
}

// Router follows the outbox for one channel from a cursor kept in the
// store (detect/route-cursor/NAME) and delivers each entry, in order, at
// least once: the cursor moves past an entry only after the channel took
// it, and a failure is retried with exponential backoff. A channel that
// starts for the first time begins at the head of the outbox (it is not
// sent the history).
type Router struct {
	c    RouterConfig
	wake chan struct{}
}

// NewRouter returns a Router; call Run, and Wake when alerts were stored.
func NewRouter(c RouterConfig) *Router {
	if c.Poll <= 0 {
		c.Poll = 5 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = defaultMaxBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Router{c: c, wake: make(chan struct{}, 1)}
}

// Wake makes Run read the outbox now. It never blocks; use it (through
// LiveConfig.Route) after the live detector stored alerts.
func (r *Router) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Router) cursorKey() string { return routeCursorPrefix + r.c.Name }

// Cursor returns the sequence number of the next entry to deliver.
func (r *Router) Cursor(ctx context.Context) (uint64, error) {
	var n uint64
	err := r.c.Alerts.st.View(ctx, func(rd store.Reader) (err error) { n, err = readUint(rd, r.cursorKey()); return err })
	return n, err
}

// start creates the cursor at the outbox head if the channel has none.
func (r *Router) start(ctx context.Context) error {
	return r.c.Alerts.st.Update(ctx, func(w store.Writer) error {
		if _, err := w.Meta(r.cursorKey()); err == nil || !errors.Is(err, store.ErrNotFound) {
			return err
		}
		head, err := readUint(w, outboxHeadKey)
		if err != nil {
			return err
		}
		return w.SetMeta(r.cursorKey(), []byte(strconv.FormatUint(head, 10)))
	})
}

// Run delivers until ctx ends. Failures are logged once until the next
// success, without the alert's content.
func (r *Router) Run(ctx context.Context) {
	backoff, last := 250*time.Millisecond, ""
	t := time.NewTicker(r.c.Poll)
	defer t.Stop()
	started := false
	for ctx.Err() == nil {
		var err error
		if !started {
			err = r.start(ctx)
			started = err == nil
		}
		if err == nil {
			err = r.drain(ctx)
		}
		if fl, ok := r.c.Channel.(Flusher); ok && err == nil {
			err = fl.Flush(ctx)
		}
		wait := backoff
		if err == nil {
			backoff, last = 250*time.Millisecond, ""
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			case <-t.C:
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if err.Error() != last {
			last = err.Error()
			r.c.Logger.Warn("detect: alert routing failed; retrying", "channel", r.c.Name, "err", last)
		}
		backoff = min(2*backoff, r.c.MaxBackoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// drain delivers every entry from the cursor to the head.
func (r *Router) drain(ctx context.Context) error {
	s := r.c.Alerts
	var cur, head uint64
	var kvs []store.KV
	if err := s.st.View(ctx, func(rd store.Reader) (err error) {
		if cur, err = readUint(rd, r.cursorKey()); err != nil {
			return err
		}
		if head, err = readUint(rd, outboxHeadKey); err != nil {
			return err
		}
		if cur < head {
			kvs, err = rd.MetaPrefix(outboxPrefix)
		}
		return err
	}); err != nil {
		return err
	}
	for _, kv := range kvs {
		seq, err := strconv.ParseUint(strings.TrimPrefix(kv.Key, outboxPrefix), 10, 64)
		if err != nil || seq < cur {
			continue
		}
		pt, err := s.b.Open(ctx, barrier.Context("outbox", kv.Key), kv.Value)
		if err != nil {
			return fmt.Errorf("detect: opening outbox entry: %w", err)
		}
		var e outboxEntry
		if err := json.Unmarshal(pt, &e); err != nil {
			return fmt.Errorf("detect: outbox entry: %w", err)
		}
		a, err := s.Get(ctx, e.Alert)
		if err != nil && !errors.Is(err, ErrNoAlert) {
			return err
		}
		if a != nil {
			if err := r.c.Channel.Deliver(ctx, &Delivery{Seq: seq, Alert: a}); err != nil {
				return err
			}
		}
		// Saved even when ctx ends now: the entry was handed over, and a
		// clean shutdown should not send it again.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err = s.st.Update(sctx, func(w store.Writer) error {
			return w.SetMeta(r.cursorKey(), []byte(strconv.FormatUint(seq+1, 10)))
		})
		cancel()
		if err != nil {
			return err
		}
	}
	if len(kvs) > 0 {
		return r.prune(ctx)
	}
	return nil
}

// prune deletes the entries every channel's cursor has passed, and those
// more than outboxKeep behind the head (a channel no longer configured
// does not keep the outbox growing; if it comes back it resumes from the
// oldest entry kept).
func (r *Router) prune(ctx context.Context) error {
	return r.c.Alerts.st.Update(ctx, func(w store.Writer) error {
		head, err := readUint(w, outboxHeadKey)
		if err != nil {
			return err
		}
		low := head
		curs, err := w.MetaPrefix(routeCursorPrefix)
		if err != nil {
			return err
		}
		for _, kv := range curs {
			if n, err := strconv.ParseUint(string(kv.Value), 10, 64); err == nil {
				low = min(low, n)
			}
		}
		if head > outboxKeep {
			low = max(low, head-outboxKeep)
		}
		kvs, err := w.MetaPrefix(outboxPrefix)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			seq, err := strconv.ParseUint(strings.TrimPrefix(kv.Key, outboxPrefix), 10, 64)
			if err == nil && seq < low {
				if err := w.DeleteMeta(kv.Key); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
