package turnload

import (
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// Op is what the engine does with one client socket.
type Op uint8

// Operations.
const (
	OpNone     Op = iota
	OpAllocate    // Allocate, answering the 401 with credentials
	OpDelete      // Refresh with LIFETIME 0 on an allocated socket
)

func (o Op) method() stun.Method {
	if o == OpDelete {
		return stun.MethodRefresh
	}
	return stun.MethodAllocate
}

// EngineConfig configures an Engine.
type EngineConfig struct {
	Server   netip.AddrPort // a loopback address
	ClientIP netip.Addr     // a loopback address of the server's family
	Creds    Creds
	// RTO is the retransmission timeout of the first send; it doubles
	// for every resend. Zero means 250 ms.
	RTO time.Duration
	// Tries is how often a request is sent before the operation counts as
	// timed out. Zero means 4.
	Tries int
}

// RunResult is what one Run did.
type RunResult struct {
	Done      int // operations that ended in a success response
	Failed    int // operations that ended in an error response
	TimedOut  int // operations that got no response after every try
	Unstarted int // operations never started because the time was up
	// Challenges counts the 401 and 438 responses answered.
	Challenges int
	// Retransmits counts requests sent again after a timeout.
	Retransmits int
	// Codes counts the final error responses by code.
	Codes map[int]int
	// Start is when Run began, Last when the last operation ended.
	Start, Last time.Time
	// Latency sums the time from each successful operation's first request
	// to its success response.
	Latency time.Duration
}

// Rate returns successful operations per second from Start to Last.
func (r *RunResult) Rate() float64 {
	d := r.Last.Sub(r.Start).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(r.Done) / d
}
