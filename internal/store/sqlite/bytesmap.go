package sqlite

// bytesMap is a map whose values are counted in bytes and held within a
// limit: put drops other values at random (Go's map order) until the new
// one fits. The version cache and the posting sets keep their values in
// one; their callers lock.
type bytesMap[K comparable, V any] struct {
	m     map[K]V
	bytes int64 // held by m, as size counts
	limit int64
	size  func(V) int64
}

func newBytesMap[K comparable, V any](limit int64, size func(V) int64) bytesMap[K, V] {
	return bytesMap[K, V]{m: make(map[K]V), limit: limit, size: size}
}

// put keeps v, of n bytes (size(v)), under k in place of any value there.
func (b *bytesMap[K, V]) put(k K, v V, n int64) {
	b.drop(k)
	for key, old := range b.m {
		if b.bytes+n <= b.limit {
			break
		}
		delete(b.m, key)
		b.bytes -= b.size(old)
	}
	b.m[k] = v
	b.bytes += n
}

// drop removes k's value, if there is one.
func (b *bytesMap[K, V]) drop(k K) {
	if old, ok := b.m[k]; ok {
		delete(b.m, k)
		b.bytes -= b.size(old)
	}
}

// clear removes every value.
func (b *bytesMap[K, V]) clear() {
	clear(b.m)
	b.bytes = 0
}
