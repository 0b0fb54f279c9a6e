package ice

import (
	"strconv"
	"sync"
)

// ConnectionState is the state of an Agent's connection as the application
// sees it, reported through AgentConfig.OnStateChange and Agent.State. The
// names follow the ICE connection states of WebRTC (RTCIceConnectionState),
// which pion and libwebrtc users know.
type ConnectionState uint8

const (
	// ConnectionNew: gathering, or waiting for Dial or Accept.
	ConnectionNew ConnectionState = iota
	// ConnectionChecking: the connectivity checks run, and no pair is
	// selected yet (or, after an ICE restart, none of the new session).
	ConnectionChecking
	// ConnectionConnected: a pair is selected and consent is fresh.
	ConnectionConnected
	// ConnectionDisconnected: the selected pair's consent checks have
	// gone unanswered for AgentConfig.DisconnectedAfter; an answer
	// makes it Connected again, and ConsentTimeout makes it Failed.
	ConnectionDisconnected
	// ConnectionFailed: every pair failed, an ICE restart failed, or
	// consent was lost (RFC 7675). Final until Closed.
	ConnectionFailed
	// ConnectionClosed: Close was called. Always the last state.
	ConnectionClosed
)

func (s ConnectionState) String() string {
	switch s {
	case ConnectionNew:
		return "new"
	case ConnectionChecking:
		return "checking"
	case ConnectionConnected:
		return "connected"
	case ConnectionDisconnected:
		return "disconnected"
	case ConnectionFailed:
		return "failed"
	case ConnectionClosed:
		return "closed"
	}
	return "ConnectionState(" + strconv.Itoa(int(s)) + ")"
}

// stateNotifier records the Agent's ConnectionState and hands each change,
// and each new selected pair, in order, to the callbacks on a goroutine of
// its own, so that the Agent's loop never waits for the application and
// the callbacks may call any Agent method, Close included. The goroutine
// starts with the first change and ends after it has delivered
// ConnectionClosed, which Close always records: Close is its owner and
// stops it, without waiting for it (the callback may be the one calling
// Close).
type stateNotifier struct {
	cb     func(ConnectionState)
	pathCB func(Pair)

	mu      sync.Mutex
	cur     ConnectionState
	queue   []notice
	running bool
	closed  bool
}

// notice is a queued callback: a state, or a selected pair when pair is
// set.
type notice struct {
	state ConnectionState
	pair  *Pair
}

// get returns the current state.
func (n *stateNotifier) get() ConnectionState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cur
}

// set records s if it differs from the current state. Nothing follows
// ConnectionClosed, and ConnectionFailed is left only for Closed.
func (n *stateNotifier) set(s ConnectionState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || s == n.cur || (n.cur == ConnectionFailed && s != ConnectionClosed) {
		return
	}
	n.cur = s
	n.closed = s == ConnectionClosed
	if n.cb != nil {
		n.queueLocked(notice{state: s})
	}
}

// selected queues p, the new selected pair, for the path callback.
func (n *stateNotifier) selected(p Pair) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.pathCB == nil {
		return
	}
	n.queueLocked(notice{pair: &p})
}

// queueLocked queues e and starts the delivering goroutine if it is not
// running.
func (n *stateNotifier) queueLocked(e notice) {
	n.queue = append(n.queue, e)
	if !n.running {
		n.running = true
		go n.deliver()
	}
}

// deliver calls the callbacks for each queued notice, in order, and ends
// when the queue is empty; set starts it again for the next change.
func (n *stateNotifier) deliver() {
	for {
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.running = false
			n.mu.Unlock()
			return
		}
		e := n.queue[0]
		n.queue = n.queue[1:]
		n.mu.Unlock()
		if e.pair != nil {
			n.pathCB(*e.pair)
		} else {
			n.cb(e.state)
		}
	}
}
