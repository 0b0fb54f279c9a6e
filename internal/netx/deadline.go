package netx

import (
	"sync"
	"time"
)

// Deadline is a settable point in time with a channel that is closed once
// it has passed, for the SetReadDeadline and SetWriteDeadline methods of a
// net.Conn or net.PacketConn: a blocked call selects on Done. It is safe
// for concurrent use, and its zero value has no deadline. Stop releases
// its timer when the connection closes.
type Deadline struct {
	mu    sync.Mutex
	t     time.Time
	timer *time.Timer
	ch    chan struct{} // closed when t passes; replaced by Set once closed
}

// Set moves the deadline to t; the zero time means none. A t in the past
// closes the Done channel at once, waking blocked calls; a t in the future
// gives a blocked call a fresh channel if the old one had expired.
func (d *Deadline) Set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.t = t
	if d.ch == nil || Closed(d.ch) {
		d.ch = make(chan struct{})
	}
	if t.IsZero() {
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		close(d.ch)
		return
	}
	ch := d.ch
	d.timer = time.AfterFunc(wait, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.ch == ch && !Closed(ch) {
			close(ch)
		}
	})
}

// Done returns a channel that is closed once the deadline has passed.
func (d *Deadline) Done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil {
		d.ch = make(chan struct{})
	}
	return d.ch
}

// Expired reports whether the deadline has passed.
func (d *Deadline) Expired() bool { return Closed(d.Done()) }

// Time returns the deadline; the zero time means none.
func (d *Deadline) Time() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.t
}

// Stop releases the timer. The deadline keeps its state; a later Set arms
// it again.
func (d *Deadline) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// Closed reports whether ch is closed, without blocking. It is for
// channels that are only ever closed, never sent on.
func Closed[C ~chan struct{} | ~<-chan struct{}](ch C) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
