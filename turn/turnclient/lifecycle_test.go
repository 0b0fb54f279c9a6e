package turnclient

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestLifecycle: the first loss reason wins, close runs its work once and
// every call returns its result, and stopRefresher waits for the
// refresher.
func TestLifecycle(t *testing.T) {
	var l lifecycle
	l.init()
	if l.closed() || l.lost() != nil {
		t.Fatal("a new lifecycle is closed or lost")
	}
	first, second := errors.New("first"), errors.New("second")
	l.lose(first)
	l.lose(second)
	if l.lost() != first {
		t.Fatalf("lost() = %v, want the first reason", l.lost())
	}
	stopped := make(chan struct{})
	l.goRefresher(func(ctx context.Context) {
		<-ctx.Done()
		close(stopped)
	})
	runs := 0
	release := func() error {
		runs++
		l.stopRefresher()
		return second
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := l.close(release); err != second {
				t.Errorf("close = %v, want the first call's result", err)
			}
		})
	}
	wg.Wait()
	select {
	case <-stopped:
	default:
		t.Fatal("stopRefresher returned before the refresher did")
	}
	if runs != 1 || !l.closed() {
		t.Fatalf("release ran %d times, closed %v", runs, l.closed())
	}
	var idle lifecycle
	idle.stopRefresher() // no refresher: nothing to wait for
}
