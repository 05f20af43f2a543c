package smart

import (
	"context"
	"strings"
	"time"

	"github.com/phivault/phivault/internal/store"
)

// sweepEvery is how often the token endpoint starts a sweep.
const sweepEvery = 10 * time.Minute

// Sweep deletes state that can no longer matter: codes a while after they
// expired, refresh tokens (spent ones too) once their family has expired,
// expired launches, revocations of tokens that have all expired, and
// assertion ids past their exp. It returns how many records it deleted.
// It is safe to run on several nodes at once.
func (s *Server) Sweep(ctx context.Context) (int, error) { return s.sweep(ctx, s.c.Now()) }

func (s *Server) sweep(ctx context.Context, now time.Time) (int, error) {
	var dead []string
	collect := func(p string, expiry func(key string, sealed []byte) (time.Time, error)) error {
		var kvs []store.KV
		err := s.v.st.View(ctx, func(r store.Reader) error {
			var err error
			kvs, err = r.MetaPrefix(p)
			return err
		})
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			t, err := expiry(kv.Key, kv.Value)
			if err != nil {
				return err
			}
			if now.After(t) {
				dead = append(dead, kv.Key)
			}
		}
		return nil
	}
	steps := []struct {
		p string
		f func(string, []byte) (time.Time, error)
	}{
		{prefixCode, func(k string, b []byte) (time.Time, error) {
			var r codeRec
			err := s.v.open(ctx, k, b, &r)
			return r.Expires.Add(10 * time.Minute), err
		}},
		{prefixRefresh, func(k string, b []byte) (time.Time, error) {
			var r refreshRec
			err := s.v.open(ctx, k, b, &r)
			return r.Grant.Expires, err
		}},
		{prefixLaunch, func(k string, b []byte) (time.Time, error) {
			var r launchRec
			err := s.v.open(ctx, k, b, &r)
			return r.Expires, err
		}},
		{prefixRevoked, func(k string, b []byte) (time.Time, error) {
			var r revokedRec
			err := s.v.open(ctx, k, b, &r)
			return r.Until, err
		}},
		{prefixJTI, func(k string, b []byte) (time.Time, error) {
			var r revokedRec
			err := s.v.open(ctx, k, b, &r)
			return r.Until, err
		}},
	}
	for _, st := range steps {
		if err := collect(st.p, st.f); err != nil {
			return 0, err
		}
	}
	for i := 0; i < len(dead); i += 500 {
		batch := dead[i:min(i+500, len(dead))]
		err := s.v.st.Update(ctx, func(tx store.Writer) error {
			for _, k := range batch {
				if err := tx.DeleteMeta(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return i, err
		}
	}
	s.mu.Lock()
	for _, k := range dead {
		if id, ok := strings.CutPrefix(k, prefixRevoked); ok {
			delete(s.revoked, id)
		}
	}
	s.mu.Unlock()
	return len(dead), nil
}

// maybeSweep starts a sweep in the background when one is due.
func (s *Server) maybeSweep() {
	now := s.c.Now()
	s.mu.Lock()
	due := now.Sub(s.swept) > sweepEvery
	if due {
		s.swept = now
	}
	s.mu.Unlock()
	if !due {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := s.sweep(ctx, now); err != nil {
			s.c.Log.Warn("smart: sweep", "err", err)
		}
	}()
}
