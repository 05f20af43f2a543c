package server

import (
	"context"
	"time"
)

// SetOCSPClock makes s read the time from now (tests move the clock).
func SetOCSPClock(s *OCSPStapler, now func() time.Time) { s.now = now }

// OCSPRefreshDue runs one refresh check of s, as Run does on each tick;
// the fetches it starts run in the background.
func OCSPRefreshDue(s *OCSPStapler) { s.refreshDue(context.Background()) }
