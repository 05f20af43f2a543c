package fhirapi

import (
	"hash/maphash"
	"slices"
	"sync"

	"github.com/phivault/phivault/internal/records"
)

// labelMemo remembers the labels (meta.security and category codes) that
// labels found in the bodies of versions. Every read decision needs them,
// and a search decides every candidate it reads, so without the memo each
// decision scans a body already scanned (about a twentieth of the
// server's CPU under the patient-scoped search); hashing the body costs a
// tenth of scanning it.
//
// An entry is keyed by the version and a hash of the body under a seed of
// this process, so a body that differs in any way (a version shaped by
// _elements, a write's new body) is scanned, never answered with another
// body's labels. It holds codes, which the stored bodies hold too; when
// full it starts over.
type labelMemo struct {
	once sync.Once
	seed maphash.Seed
	mu   sync.Mutex
	m    map[labelKey]labelSet
}

type labelKey struct {
	typ, id string
	vid     int64
	body    uint64 // maphash of the body
}

type labelSet struct{ security, category []string }

// labelMemoMax is the most bodies remembered (a few hundred bytes each).
const labelMemoMax = 1 << 16

// of returns labels(e.Body).
func (l *labelMemo) of(e records.Entry) (security, category []string) {
	l.once.Do(func() { l.seed = maphash.MakeSeed() })
	k := labelKey{e.Type, e.ID, e.VID, maphash.Bytes(l.seed, e.Body)}
	l.mu.Lock()
	s, ok := l.m[k]
	l.mu.Unlock()
	if ok {
		// Clipped: a caller that appends gets a copy, not the memo's.
		return slices.Clip(s.security), slices.Clip(s.category)
	}
	security, category = labels(e.Body)
	l.mu.Lock()
	if l.m == nil || len(l.m) >= labelMemoMax {
		l.m = make(map[labelKey]labelSet)
	}
	l.m[k] = labelSet{security, category}
	l.mu.Unlock()
	return slices.Clip(security), slices.Clip(category)
}
