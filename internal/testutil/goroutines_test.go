package testutil

import (
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// parked is a goroutine that runs parkedGoroutine until release.
type parked struct{ started, release, done chan struct{} }

// park starts a goroutine and returns once it runs parkedGoroutine.
func park() *parked {
	p := &parked{make(chan struct{}), make(chan struct{}), make(chan struct{})}
	go parkedGoroutine(p)
	<-p.started
	return p
}

// parkedGoroutine's name is what the stack dump must show.
func parkedGoroutine(p *parked) {
	close(p.started)
	<-p.release
	close(p.done)
}

// end releases the goroutine and waits until it has returned.
func (p *parked) end() {
	close(p.release)
	<-p.done
}

func TestSettleGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	p := park()
	err := SettleGoroutines(before, 0)
	if err == nil || !strings.Contains(err.Error(), "parkedGoroutine") {
		t.Errorf("with a goroutine left: %v, want an error with its stack", err)
	}
	p.end()
	if err := SettleGoroutines(before, settleTimeout); err != nil {
		t.Errorf("after the goroutine ended: %v", err)
	}
}

// quiet waits, on the real clock and for at most a few seconds, until the
// number of goroutines has not changed for 100 ms: the goroutine of the
// test that ran before this one may still be on its way out.
func quiet() {
	deadline := time.Now().Add(5 * time.Second)
	n, since := runtime.NumGoroutine(), time.Now()
	for time.Since(since) < 100*time.Millisecond && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		if m := runtime.NumGoroutine(); m != n {
			n, since = m, time.Now()
		}
	}
}

// TestCheckGoroutines runs in a bubble so that the wait of the failing
// case passes on the fake clock. The bubble's clock is fake, so a wait in
// it cannot outlast a goroutine outside it that is still exiting; quiet
// lets those go first.
func TestCheckGoroutines(t *testing.T) {
	quiet()
	synctest.Test(t, func(t *testing.T) {
		before := runtime.NumGoroutine()
		p := park()
		r := &recorder{TB: t}
		CheckGoroutines(r, before)
		if !strings.Contains(r.failed, "goroutines left behind") {
			t.Errorf("with a goroutine left: failure %q", r.failed)
		}
		p.end()
		r = &recorder{TB: t}
		CheckGoroutines(r, before)
		if r.failed != "" {
			t.Errorf("after the goroutine ended: %s", r.failed)
		}
	})
}
