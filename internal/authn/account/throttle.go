package account

import (
	"sync"
	"time"
)

// throttle counts failed logins per account id (existing or not, so that
// throttling does not reveal which ids exist) and per source address. Its
// maps are bounded (MaxTracked each): when one is full, expired entries
// go first, then the least recently seen of a random sample.
type throttle struct {
	o       Options
	mu      sync.Mutex
	users   map[string]*counter
	sources map[string]*counter
}

type counter struct {
	fails    int
	inflight int       // attempts being checked now
	start    time.Time // first failure of the current window
	last     time.Time // last failure
	until    time.Time // attempts before this are refused (throttled)
}

func newThrottle(o Options) throttle {
	return throttle{o: o, users: map[string]*counter{}, sources: map[string]*counter{}}
}

// acquire admits one attempt for id from source, or reports false when
// it must wait: the account or source is blocked, the account has an
// attempt in flight (so parallel guesses cannot overtake the count), or
// the source's failures and attempts in flight reach its limit. An
// admitted attempt ends with release.
func (t *throttle) acquire(id, source string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	u, s := t.users[id], t.sources[source]
	if (u != nil && (now.Before(u.until) || u.inflight > 0)) ||
		(s != nil && (now.Before(s.until) || (now.Sub(s.start) <= t.o.SourceWindow && s.fails+s.inflight > t.o.SourceLimit))) {
		return false
	}
	t.get(t.users, id, now).inflight++
	t.get(t.sources, source, now).inflight++
	return true
}

// release ends an attempt admitted by acquire.
func (t *throttle) release(id, source string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range []*counter{t.users[id], t.sources[source]} {
		if c != nil && c.inflight > 0 {
			c.inflight--
		}
	}
}

// failure records a failed attempt and reports whether it made the
// account reach the lock threshold and whether it blocked the source.
func (t *throttle) failure(id, source string, now time.Time) (lock, sourceBlocked bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	u := t.get(t.users, id, now)
	if now.Sub(u.last) > t.o.FailureWindow {
		u.fails = 0
	}
	u.fails++
	u.last = now
	switch {
	case u.fails >= t.o.LockAfter:
		u.until, u.fails, lock = now.Add(t.o.LockFor), 0, true
	case u.fails >= t.o.DelayAfter:
		u.until = now.Add(min(time.Second<<min(u.fails-t.o.DelayAfter, 20), t.o.LockFor))
	}
	s := t.get(t.sources, source, now)
	if now.Sub(s.start) > t.o.SourceWindow {
		s.fails, s.start = 0, now
	}
	s.fails++
	s.last = now
	if s.fails > t.o.SourceLimit && !now.Before(s.until) {
		s.until, sourceBlocked = now.Add(t.o.SourceBlock), true
	}
	return lock, sourceBlocked
}

// reset forgets id's failures (a successful login, an administrator's
// unlock).
func (t *throttle) reset(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if u := t.users[id]; u != nil {
		u.fails, u.until = 0, time.Time{}
	}
}

// get returns m's counter for k, making room if m is full.
func (t *throttle) get(m map[string]*counter, k string, now time.Time) *counter {
	if c := m[k]; c != nil {
		return c
	}
	if len(m) >= t.o.MaxTracked {
		t.evict(m, now)
	}
	c := &counter{start: now}
	m[k] = c
	return c
}

func (t *throttle) expired(c *counter, now time.Time) bool {
	return c.inflight == 0 && now.After(c.until) && now.Sub(c.last) > max(t.o.FailureWindow, t.o.SourceWindow)
}

func (t *throttle) evict(m map[string]*counter, now time.Time) {
	for k, c := range m {
		if t.expired(c, now) {
			delete(m, k)
		}
	}
	if len(m) < t.o.MaxTracked {
		return
	}
	// Still full of live entries: drop the least recently seen of a
	// sample (map order is random), never one still blocking.
	var victim string
	var oldest time.Time
	n := 0
	for k, c := range m {
		if now.Before(c.until) || c.inflight > 0 {
			continue
		}
		if victim == "" || c.last.Before(oldest) {
			victim, oldest = k, c.last
		}
		if n++; n == 16 {
			break
		}
	}
	if victim == "" {
		for k := range m {
			victim = k
			break
		}
	}
	delete(m, victim)
}
