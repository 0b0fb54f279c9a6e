package mailbox

import (
	"context"
	"errors"
	"sync"
)

var (
	errQueueFinished = errors.New("queue finished")
	errQueueOverflow = errors.New("queue overflow")
)

// outQueue holds the frames waiting for a connection's writer, bounded in
// bytes: a client that does not read is cut off, not buffered for. Its
// methods are safe for concurrent use; push never blocks.
type outQueue struct {
	mu       sync.Mutex
	frames   [][]byte
	bytes    int
	max      int
	overflow bool
	finished bool
	wake     chan struct{} // capacity 1
}

func (q *outQueue) init(maxBytes int) {
	q.max = maxBytes
	q.wake = make(chan struct{}, 1)
}

// push queues b; it returns false when b overflowed the queue, once: the
// queue drops everything then and ends.
func (q *outQueue) push(b []byte) bool {
	q.mu.Lock()
	ok := true
	switch {
	case q.overflow:
	case q.bytes+len(b) <= q.max:
		q.frames = append(q.frames, b)
		q.bytes += len(b)
	default:
		q.overflow, ok = true, false
		q.frames, q.bytes = nil, 0
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return ok
}

// finish makes take return errQueueFinished once the queue is empty.
func (q *outQueue) finish() {
	q.mu.Lock()
	q.finished = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take waits for frames and returns all of them, with
// errQueueFinished or errQueueOverflow when the queue has ended, or the
// context's error.
func (q *outQueue) take(ctx context.Context) ([][]byte, error) {
	for {
		q.mu.Lock()
		frames := q.frames
		q.frames, q.bytes = nil, 0
		var err error
		switch {
		case q.overflow:
			err = errQueueOverflow
		case q.finished:
			err = errQueueFinished
		}
		q.mu.Unlock()
		if len(frames) > 0 || err != nil {
			return frames, err
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
