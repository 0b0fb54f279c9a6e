package turnclient

import (
	"context"
	"sync"

	"github.com/icebreaker-net/icebreaker/internal/netx"
)

// lifecycle is how a Relay ends, in one place: Close (closing), the loss
// of the allocation or of the connection to the server (dead, with the
// reason), and the goroutines that end with them: the read loop (wg) and
// the refresher. Safe for concurrent use once init has run.
type lifecycle struct {
	closing   chan struct{} // closed by close
	dead      chan struct{} // closed by lose
	deadErr   error         // why dead: set once, before dead is closed
	deadOnce  sync.Once
	closeOnce sync.Once // close runs once; concurrent calls wait for it
	closeErr  error     // the result of the first close
	wg        sync.WaitGroup
	// stopRefresh cancels the refresher's requests and refreshed is
	// closed when it has returned; both nil until goRefresher.
	stopRefresh context.CancelFunc
	refreshed   chan struct{}
}

func (l *lifecycle) init() {
	l.closing = make(chan struct{})
	l.dead = make(chan struct{})
}

// closed reports whether close was called.
func (l *lifecycle) closed() bool { return netx.Closed(l.closing) }

// lose marks the allocation lost with err; the first reason wins.
func (l *lifecycle) lose(err error) {
	l.deadOnce.Do(func() {
		l.deadErr = err
		close(l.dead)
	})
}

// lost returns why the allocation was lost, or nil.
func (l *lifecycle) lost() error {
	if netx.Closed(l.dead) {
		return l.deadErr
	}
	return nil
}

// goRefresher runs f on a goroutine until the context it gets is
// cancelled by stopRefresher. Called once, before close can run.
func (l *lifecycle) goRefresher(f func(context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	l.stopRefresh, l.refreshed = cancel, make(chan struct{})
	go func() {
		defer close(l.refreshed)
		f(ctx)
	}()
}

// stopRefresher stops the refresher and waits for it, if it runs.
func (l *lifecycle) stopRefresher() {
	if l.stopRefresh != nil {
		l.stopRefresh()
		<-l.refreshed
	}
}

// close closes closing and runs release, once: a later call waits for the
// first and returns its result.
func (l *lifecycle) close(release func() error) error {
	l.closeOnce.Do(func() {
		close(l.closing)
		l.closeErr = release()
	})
	return l.closeErr
}
