package fhirapi

import (
	"slices"

	"github.com/phivault/phivault/internal/bodymemo"
	"github.com/phivault/phivault/internal/records"
)

// labelMemo remembers what labels finds in bodies: every read decision
// needs a body's labels, and without the memo a search that decides the
// versions of an earlier page again scans them again (about a twentieth
// of the server's CPU under the patient-scoped search).
type labelMemo struct{ m bodymemo.Memo[labelSet] }

type labelSet struct{ security, category []string }

// of returns labels(e.Body).
func (l *labelMemo) of(e records.Entry) (security, category []string) {
	s, _ := l.m.Get(e.Type, e.ID, e.VID, e.Body, nil, func() (labelSet, error) {
		sec, cat := labels(e.Body)
		return labelSet{sec, cat}, nil
	})
	// Clipped: a caller that appends gets a copy, not the memo's.
	return slices.Clip(s.security), slices.Clip(s.category)
}
