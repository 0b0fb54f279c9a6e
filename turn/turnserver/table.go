package turnserver

import (
	"net/netip"
	"sync"

	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

// Client transports, the protocol part of a 5-tuple.
const (
	transportUDP uint8 = iota + 1
	transportTCP
	transportTLS
)

func transportOf(network string) uint8 {
	switch network {
	case "tcp":
		return transportTCP
	case "tls":
		return transportTLS
	}
	return transportUDP
}

// authTransport names a client transport for turnauth, which binds nonces
// to it.
func authTransport(t uint8) turnauth.Transport {
	switch t {
	case transportTCP:
		return turnauth.TCP
	case transportTLS:
		return turnauth.TLS
	}
	return turnauth.UDP
}

// fiveTuple identifies an allocation: the client's address, the server
// address it talks to and the transport between them. RFC 8656,
// Section 2.
type fiveTuple struct {
	client, server netip.AddrPort
	transport      uint8
}

// shards is how many independently locked parts the allocation table has.
const shards = 64

// table maps 5-tuples to allocations. Lookups take a shard's read lock
// only, so packets of different clients rarely meet on one lock and never
// wait for one another.
type table struct {
	shard [shards]struct {
		mu sync.RWMutex
		m  map[fiveTuple]*allocation
		_  [40]byte // keep neighbouring shards off one cache line
	}
}

func newTable() *table {
	t := new(table)
	for i := range t.shard {
		t.shard[i].m = make(map[fiveTuple]*allocation)
	}
	return t
}

// index spreads 5-tuples over shards by the client's address and port.
func (k *fiveTuple) index() int {
	a := k.client.Addr().As16()
	h := uint32(k.client.Port())
	for i := 0; i < 16; i += 4 {
		h = (h ^ uint32(a[i])<<24 ^ uint32(a[i+1])<<16 ^ uint32(a[i+2])<<8 ^ uint32(a[i+3])) * 0x9e3779b1
	}
	return int(h>>16) % shards
}

func (t *table) get(k fiveTuple) *allocation {
	s := &t.shard[k.index()]
	s.mu.RLock()
	a := s.m[k]
	s.mu.RUnlock()
	return a
}

// insert adds a unless the 5-tuple is taken; it returns the allocation
// that holds it then.
func (t *table) insert(a *allocation) (existing *allocation) {
	s := &t.shard[a.key.index()]
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[a.key]; e != nil {
		return e
	}
	s.m[a.key] = a
	return nil
}

// remove deletes a, if it is still the allocation of its 5-tuple.
func (t *table) remove(a *allocation) bool {
	s := &t.shard[a.key.index()]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[a.key] != a {
		return false
	}
	delete(s.m, a.key)
	return true
}

// each calls f for every allocation, one shard at a time, outside the
// shard's lock.
func (t *table) each(f func(*allocation)) {
	var batch []*allocation
	for i := range t.shard {
		s := &t.shard[i]
		s.mu.RLock()
		batch = batch[:0]
		for _, a := range s.m {
			batch = append(batch, a)
		}
		s.mu.RUnlock()
		for _, a := range batch {
			f(a)
		}
	}
}
