package ice

import (
	"net/netip"
	"slices"
	"sync"
)

// sockSet is the Agent's bases and the goroutines it runs. mu guards list
// and closed and makes wg.Add exclusive with closing, so that once
// closeAll has run nothing joins and no goroutine starts. Each socket is
// closed by whoever takes it out of the list (closeAll or remove).
type sockSet struct {
	mu     sync.Mutex
	list   []*sock
	closed bool
	// wg counts every goroutine of the Agent but the state callback's:
	// the loop, gathering, permissions and each socket's readers and
	// writers. Close waits for it.
	wg sync.WaitGroup
}

// add appends s and runs each of serve on a goroutine of its own, unless
// the set is closed: then it returns false and s is the caller's to close.
func (ss *sockSet) add(s *sock, serve ...func(*sock)) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return false
	}
	ss.list = append(ss.list, s)
	for _, f := range serve {
		ss.goLocked(func() { f(s) })
	}
	return true
}

// spawn runs f on a goroutine that closeAll's caller waits for, unless the
// set is closed.
func (ss *sockSet) spawn(f func()) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return false
	}
	ss.goLocked(f)
	return true
}

func (ss *sockSet) goLocked(f func()) {
	ss.wg.Add(1)
	go func() {
		defer ss.wg.Done()
		f()
	}()
}

// forBase returns the socket bound to base, or nil.
func (ss *sockSet) forBase(base netip.AddrPort) *sock {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, s := range ss.list {
		if s.addr == base {
			return s
		}
	}
	return nil
}

// filter returns the sockets keep reports true for.
func (ss *sockSet) filter(keep func(*sock) bool) []*sock {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var out []*sock
	for _, s := range ss.list {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// remove takes out and returns the sockets gone reports true for; the
// caller closes them.
func (ss *sockSet) remove(gone func(*sock) bool) []*sock {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var out []*sock
	ss.list = slices.DeleteFunc(ss.list, func(s *sock) bool {
		if gone(s) {
			out = append(out, s)
			return true
		}
		return false
	})
	return out
}

// closeAll closes the set to new sockets and goroutines, and takes out
// and returns every socket; the caller closes them, then waits for wg.
func (ss *sockSet) closeAll() []*sock {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
	out := ss.list
	ss.list = nil
	return out
}

// isClosed reports whether closeAll ran.
func (ss *sockSet) isClosed() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.closed
}
