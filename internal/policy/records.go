package policy

import (
	"strings"
	"sync"

	"github.com/cedar-policy/cedar-go"
)

// maxCached bounds each cache: keys include caller-chosen strings
// (resource type, purpose, roles), so a flood of odd values must not grow
// memory; past the bound, records are built afresh.
const maxCached = 4096

// caches holds the Cedar records and role sets decisions reuse. Records
// are immutable, so sharing them between concurrent decisions is safe.
type caches struct {
	principal [32]cedar.Record // by the bits of mfa, trained, interactive, operatorMethod, workforce

	mu        sync.RWMutex
	resources map[resourceKey]cedar.Record
	contexts  map[contextKey]cedar.Record
	roleSets  map[string]cedar.EntityUIDSet
}

type resourceKey struct {
	typ, kind  string
	restricted bool
}

// contextKey is the purpose and the bits of typeLevel, relationship, own,
// consentDeny, researchConsent, breakGlass, scopeOK (in that order).
type contextKey struct {
	purpose string
	bits    uint8
}

func newCaches() *caches {
	c := &caches{resources: map[resourceKey]cedar.Record{}, contexts: map[contextKey]cedar.Record{},
		roleSets: map[string]cedar.EntityUIDSet{}}
	for b := range c.principal {
		bit := func(i int) cedar.Boolean { return cedar.Boolean(b&(1<<i) != 0) }
		c.principal[b] = cedar.NewRecord(cedar.RecordMap{
			"mfa": bit(0), "trained": bit(1), "interactive": bit(2), "operatorMethod": bit(3), "workforce": bit(4),
		})
	}
	return c
}

func (c *caches) resource(k resourceKey) cedar.Record {
	c.mu.RLock()
	r, ok := c.resources[k]
	c.mu.RUnlock()
	if ok {
		return r
	}
	r = cedar.NewRecord(cedar.RecordMap{
		"type": cedar.String(k.typ), "kind": cedar.String(k.kind), "restricted": cedar.Boolean(k.restricted),
	})
	c.mu.Lock()
	if len(c.resources) < maxCached {
		c.resources[k] = r
	}
	c.mu.Unlock()
	return r
}

func (c *caches) context(k contextKey) cedar.Record {
	c.mu.RLock()
	r, ok := c.contexts[k]
	c.mu.RUnlock()
	if ok {
		return r
	}
	bit := func(i int) cedar.Boolean { return cedar.Boolean(k.bits&(1<<i) != 0) }
	r = cedar.NewRecord(cedar.RecordMap{
		"purpose":         cedar.String(k.purpose),
		"typeLevel":       bit(0),
		"relationship":    bit(1),
		"own":             bit(2),
		"consentDeny":     bit(3),
		"researchConsent": bit(4),
		"breakGlass":      bit(5),
		"scopeOK":         bit(6),
	})
	c.mu.Lock()
	if len(c.contexts) < maxCached {
		c.contexts[k] = r
	}
	c.mu.Unlock()
	return r
}

// roles returns the principal's parents: one Role entity per role.
func (c *caches) roles(roles []string) cedar.EntityUIDSet {
	key := ""
	switch len(roles) {
	case 0:
	case 1:
		key = roles[0]
	default:
		key = strings.Join(roles, "\x00")
	}
	c.mu.RLock()
	s, ok := c.roleSets[key]
	c.mu.RUnlock()
	if ok {
		return s
	}
	parents := make([]cedar.EntityUID, len(roles))
	for i, role := range roles {
		parents[i] = cedar.NewEntityUID(typeRole, cedar.String(role))
	}
	s = cedar.NewEntityUIDSet(parents...)
	c.mu.Lock()
	if len(c.roleSets) < maxCached {
		c.roleSets[key] = s
	}
	c.mu.Unlock()
	return s
}
