// Package turnloadcmd is the logic of `icebreaker turn load`: it makes
// many TURN allocations (RFC 8656, Section 7), creates the permissions
// (Section 9) and channels (Section 11) between them or to a UDP echo
// peer, sends datagrams at a fixed rate over ChannelData or Send
// indications (Sections 11-12) for a bounded time, and reports what came
// back: loss, reordering, a latency histogram and the relay's counters.
//
// The command parses the flags, resolves the server and builds the TURN
// client configuration; Run does the rest.
package turnloadcmd

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/cmd/icebreaker/internal/turncheck"
	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// Bounds of `icebreaker turn load`, so that a typo cannot turn it into a
// flood: every run ends, and its packet count is at most
// MaxRate × MaxDuration.
const (
	MaxAllocations = 10000
	MaxConcurrency = 1000
	MaxRate        = 1e6
	MaxDuration    = 10 * time.Minute
	// MaxSize fits a Send indication (36 bytes of headers) into the
	// 4 KiB message that servers commonly read at most.
	MaxSize = 4000
	// loadDrain is how long the run waits, after the last datagram was
	// sent, for those still in flight (loadInterruptDrain after Ctrl-C).
	loadDrain          = 2 * time.Second
	loadInterruptDrain = 250 * time.Millisecond
	// A sender sleeps at least loadMinTick between bursts and sends at
	// most loadMaxBurst datagrams per burst, then looks at the clock and
	// the context again.
	loadMinTick  = time.Millisecond
	loadMaxBurst = 1024
	// loadBindPoll is how often the run looks whether the channels of
	// --mode channel are bound (turnclient binds them in the background).
	loadBindPoll = 5 * time.Millisecond
	// loadMaxErrorKinds bounds the distinct error messages kept.
	loadMaxErrorKinds = 10
)

// The header of every load datagram; the rest of the datagram is zeros.
//
//	offset 0  magic "IBLD"
//	       4  run ID (random: datagrams of another run are not counted)
//	       8  flags (loadWarmup)
//	       9  index of the sending allocation, uint32
//	      13  sequence number of the sender, uint64
//	      21  send time in ns since the run's epoch (monotonic), int64
//	      29
const (
	HeaderLen  = 29
	loadWarmup = 1 // a datagram that makes turnclient bind a channel; not counted
)

var loadMagic = [4]byte{'I', 'B', 'L', 'D'}

// Modes of Config.Mode.
const (
	ModeChannel = "channel" // ChannelData after a ChannelBind
	ModeSend    = "send"    // Send indications only
)

// Config is what a run does. Every field must be set except where its
// zero value is documented.
type Config struct {
	// Server is the TURN server's address; Client.Server is where the
	// client connects (normally the same).
	Server netip.AddrPort
	// Client configures the allocations. Run copies it and sets Queue,
	// BindAfter (by Mode) and Family (by Peer).
	Client turnclient.Config
	// Timeout limits each allocation, permission and the channel
	// bindings.
	Timeout time.Duration
	// Allocations is the number of allocations, 1-MaxAllocations; at
	// least 2 without Peer.
	Allocations int
	// Concurrency is the number of allocations (and permissions,
	// deletions) in flight at once, 1-MaxConcurrency.
	Concurrency int
	// Size is the datagram size in bytes, HeaderLen-MaxSize.
	Size int
	// Rate is datagrams per second, all allocations together, above 0
	// and at most MaxRate.
	Rate float64
	// Duration is how long to send, above 0 and at most MaxDuration.
	Duration time.Duration
	// Mode is ModeChannel or ModeSend.
	Mode string
	// Peer is a UDP echo server to send to; the zero value pairs the
	// allocations (i sends to i^1).
	Peer netip.AddrPort
	// MaxLoss is the percentage of datagrams that may be lost before Run
	// reports the run as failed, 0-100.
	MaxLoss float64
	// Progress, if not nil, gets a status line rewritten every second
	// (for a terminal).
	Progress io.Writer
}

// Validate reports what is wrong with c.
func (c *Config) Validate() error {
	switch {
	case !c.Server.IsValid():
		return errors.New("turnloadcmd: no server")
	case c.Timeout <= 0:
		return errors.New("turnloadcmd: timeout must be positive")
	case c.Allocations < 1 || c.Allocations > MaxAllocations:
		return fmt.Errorf("turnloadcmd: allocations must be 1-%d", MaxAllocations)
	case !c.Peer.IsValid() && c.Allocations < 2:
		return errors.New("turnloadcmd: pairing the allocations needs 2 or more")
	case c.Concurrency < 1 || c.Concurrency > MaxConcurrency:
		return fmt.Errorf("turnloadcmd: concurrency must be 1-%d", MaxConcurrency)
	case c.Size < HeaderLen || c.Size > MaxSize:
		return fmt.Errorf("turnloadcmd: size must be %d-%d bytes", HeaderLen, MaxSize)
	case !(c.Rate > 0) || c.Rate > MaxRate: // !(>) also refuses NaN
		return fmt.Errorf("turnloadcmd: rate must be above 0 and at most %g", float64(MaxRate))
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("turnloadcmd: duration must be above 0 and at most %s", MaxDuration)
	case c.Mode != ModeChannel && c.Mode != ModeSend:
		return fmt.Errorf("turnloadcmd: mode must be %s or %s, not %q", ModeChannel, ModeSend, c.Mode)
	case !(c.MaxLoss >= 0) || c.MaxLoss > 100:
		return errors.New("turnloadcmd: max loss must be a percentage, 0-100")
	}
	return nil
}

// Run runs the load test until it is done or ctx ends (then it stops
// early and reports what it measured). It returns the report, nil only
// when cfg is invalid, and an error when the run could not start or
// failed: no datagram sent or received, allocations refused, or more
// than MaxLoss percent lost.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg
	c.Client.Queue = 1024
	if c.Mode == ModeChannel {
		c.Client.BindAfter = 1 // the warm-up datagram asks for the channel
	} else {
		// Config.BindAfter cannot be negative; this many Send
		// indications to one peer are never reached.
		c.Client.BindAfter = math.MaxInt
	}
	if c.Peer.IsValid() && c.Peer.Addr().Is6() {
		c.Client.Family = turnclient.IPv6
	}
	l := &loadRun{c: &c, cfg: c.Client, server: c.Server, epoch: time.Now(), arrived: make(chan struct{}, 1)}
	var id [4]byte
	rand.Read(id[:])
	l.runID = binary.BigEndian.Uint32(id[:])

	stopProgress := func() {}
	if c.Progress != nil {
		stop, done := make(chan struct{}), make(chan struct{})
		go func() { defer close(done); l.progress(c.Progress, stop) }()
		stopProgress = func() { close(stop); <-done }
	}
	runErr := l.run(ctx)
	stopProgress()

	rep := l.report(ctx.Err() != nil)
	switch {
	case runErr != nil:
		return rep, runErr
	case rep.Interrupted:
		return rep, nil
	case rep.Sent == 0:
		return rep, errors.New("no datagram could be sent")
	case rep.Received == 0:
		return rep, errors.New("no datagram came back through the relay: the server or a firewall drops relayed traffic")
	case rep.AllocFailed > 0:
		first := ""
		if len(rep.Errors) > 0 {
			first = " (" + rep.Errors[0].Error + ")"
		}
		return rep, fmt.Errorf("%d of %d allocations failed%s", rep.AllocFailed, rep.Requested, first)
	case rep.LossPercent > c.MaxLoss:
		return rep, fmt.Errorf("%.2f%% of the datagrams were lost, more than --max-loss %g%%", rep.LossPercent, c.MaxLoss)
	}
	return rep, nil
}

// loadRun is one run of `icebreaker turn load`: the allocations and what
// its senders and receivers count. Run owns every goroutine the run
// starts and waits for all of them before it reports.
type loadRun struct {
	c      *Config
	cfg    turnclient.Config
	server netip.AddrPort
	runID  uint32
	epoch  time.Time // send times are measured from here (monotonic clock)

	relays  []*turnclient.Relay // the allocations that succeeded; fixed after allocate
	targets []*net.UDPAddr      // where relays[i] sends

	phase          atomic.Int32 // loadPhase*, for the progress line
	allocated      atomic.Int64
	allocFailed    atomic.Int64
	definitive     atomic.Bool // an error that every request would get: the run stops
	sent, received atomic.Uint64
	foreign        atomic.Uint64 // datagrams that are not this run's
	reordered      atomic.Uint64 // datagrams older than one already received from the same sender
	unbound        int           // channels not bound in time (--mode channel)
	lat            latencyHist
	errs           errorTally
	arrived        chan struct{} // capacity 1: a datagram was counted (wakes the drain)

	allocTime, sendTime time.Duration
	sendStart           atomic.Int64 // ns since epoch when sending started
}

const (
	loadPhaseAllocate int32 = iota
	loadPhaseSetup
	loadPhaseSend
	loadPhaseEnd
)

// definitiveLoadError reports whether err will be the answer to every
// other request of the run too (wrong credentials, a peer the policy
// forbids), so that the run stops at once instead of waiting out the
// timeout of each.
func definitiveLoadError(err error) bool {
	se, isSTUN := errors.AsType[*stun.Error](err)
	return errors.Is(err, turnclient.ErrForbidden) || errors.Is(err, stunclient.ErrNoCredentials) ||
		(isSTUN && se.Code == stun.CodeUnauthorized)
}

// run allocates, sets up permissions (and channels), sends for the
// duration, waits for the datagrams in flight and releases every
// allocation. Interrupted by ctx, it ends early; the counters tell how far
// it got. It returns an error only when the run could not start.
func (l *loadRun) run(ctx context.Context) error {
	l.allocate(ctx)
	var receivers sync.WaitGroup
	var senders <-chan struct{}
	defer func() {
		l.phase.Store(loadPhaseEnd)
		// Close waits up to a second for each deletion (Refresh with
		// LIFETIME 0): more in flight, so that an unresponsive server
		// does not hold up the end for long.
		forEach(context.Background(), len(l.relays), max(l.c.Concurrency, 256), func(i int) { l.relays[i].Close() })
		receivers.Wait()
		if senders != nil {
			<-senders // a sender blocked in a write returned when its relay closed
		}
	}()
	for i, r := range l.relays {
		receivers.Go(func() { l.receive(i, r) })
	}
	if ctx.Err() != nil {
		return nil
	}
	switch {
	case len(l.relays) == 0:
		if kinds := l.errs.list(); len(kinds) > 0 {
			return fmt.Errorf("no allocation succeeded (%s)", kinds[0].Error)
		}
		return errors.New("no allocation succeeded")
	case !l.c.Peer.IsValid() && len(l.relays) < 2:
		return errors.New("pairing the allocations needs two of them, and only one succeeded")
	}
	if l.definitive.Load() {
		return fmt.Errorf("stopped at the first allocation the server refused: %s", l.errs.list()[0].Error)
	}
	l.phase.Store(loadPhaseSetup)
	l.permit(ctx)
	if l.definitive.Load() {
		return fmt.Errorf("stopped at the first permission the server refused: %s", l.errs.list()[0].Error)
	}
	if l.c.Mode == ModeChannel {
		l.bindChannels(ctx)
	}
	if ctx.Err() != nil {
		return nil
	}
	sendCtx, cancel := context.WithTimeout(ctx, l.c.Duration)
	defer cancel()
	senders = l.startSenders(sendCtx)
	select {
	case <-senders: // all sent
	case <-sendCtx.Done():
		// A sender blocked in a write to a stalled TCP or TLS
		// connection returns when the relays close; the drain does not
		// wait for it.
		t := time.NewTimer(l.c.Timeout)
		select {
		case <-senders:
		case <-t.C:
			l.errs.add("send", errors.New("writes to the server blocked past the end of the run"))
		}
		t.Stop()
	}
	l.sendTime = time.Duration(time.Since(l.epoch).Nanoseconds() - l.sendStart.Load())
	drain := loadDrain
	if ctx.Err() != nil {
		drain = loadInterruptDrain
	}
	l.drain(drain)
	return nil
}

// forEach calls f(i) for each i in [0, n), at most k at a time, and starts
// no new call once ctx is done. It returns when all calls have returned.
func forEach(ctx context.Context, n, k int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, k) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}

// allocate makes the allocations, c.Concurrency at a time, and keeps those
// that succeeded (in order) in l.relays.
func (l *loadRun) allocate(ctx context.Context) {
	slots := make([]*turnclient.Relay, l.c.Allocations)
	start := time.Now()
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	forEach(stopCtx, len(slots), l.c.Concurrency, func(i int) {
		c, cancel := context.WithTimeout(stopCtx, l.c.Timeout)
		r, err := turnclient.Allocate(c, l.cfg)
		cancel()
		if err != nil {
			if ctx.Err() == nil && (stopCtx.Err() == nil || definitiveLoadError(err)) {
				l.allocFailed.Add(1)
				l.errs.add("allocate", explainLoadError(err, l.server))
			}
			if definitiveLoadError(err) {
				l.definitive.Store(true)
				stop()
			}
			return
		}
		slots[i] = r
		l.allocated.Add(1)
	})
	l.allocTime = time.Since(start)
	for _, r := range slots {
		if r != nil {
			l.relays = append(l.relays, r)
		}
	}
}

// permit chooses each allocation's target and creates the permissions
// that let the datagrams through both ways (RFC 8656, Section 9): the
// sender's for its target, and the receiver's for the sender. Without
// --peer, allocation i sends to i^1, and the last of an odd number to 0.
func (l *loadRun) permit(ctx context.Context) {
	n := len(l.relays)
	type perm struct {
		relay int
		ip    netip.Addr
	}
	var perms []perm
	seen := make(map[perm]bool)
	add := func(i int, ip netip.Addr) {
		if p := (perm{i, ip}); !seen[p] {
			seen[p] = true
			perms = append(perms, p)
		}
	}
	l.targets = make([]*net.UDPAddr, n)
	for i, r := range l.relays {
		if l.c.Peer.IsValid() {
			l.targets[i] = net.UDPAddrFromAddrPort(l.c.Peer)
			add(i, l.c.Peer.Addr())
			continue
		}
		j := i ^ 1
		if j >= n {
			j = 0
		}
		to := l.relays[j].Relayed()[0]
		l.targets[i] = net.UDPAddrFromAddrPort(to)
		add(i, to.Addr())
		add(j, r.Relayed()[0].Addr())
	}
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	forEach(stopCtx, len(perms), l.c.Concurrency, func(k int) {
		c, cancel := context.WithTimeout(stopCtx, l.c.Timeout)
		err := l.relays[perms[k].relay].CreatePermission(c, perms[k].ip)
		cancel()
		if err != nil && ctx.Err() == nil && (stopCtx.Err() == nil || definitiveLoadError(err)) {
			l.errs.add("permission", turncheck.WithForbiddenHint(explainLoadError(err, l.server), l.c.Peer.IsValid()))
		}
		if err != nil && definitiveLoadError(err) {
			l.definitive.Store(true)
			stop()
		}
	})
}

// bindChannels sends each allocation's warm-up datagram, after which
// turnclient (BindAfter 1) binds a channel to the target in the
// background, and waits until the channels are bound (RFC 8656, Section
// 11), at most c.Timeout. An allocation whose channel is not
// bound by then goes on with Send indications.
func (l *loadRun) bindChannels(ctx context.Context) {
	buf := l.newDatagram()
	buf[8] = loadWarmup
	for i, r := range l.relays {
		binary.BigEndian.PutUint32(buf[9:], uint32(i))
		if _, err := r.WriteTo(buf, l.targets[i]); err != nil {
			l.errs.add("warm-up", stripOpError(err))
		}
	}
	deadline := time.NewTimer(l.c.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(loadBindPoll)
	defer tick.Stop()
	for {
		l.unbound = 0
		for i, r := range l.relays {
			if r.Channel(l.targets[i].AddrPort()) == 0 {
				l.unbound++
			}
		}
		if l.unbound == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			l.errs.add("channel", fmt.Errorf("%d of %d channels not bound within %s; those allocations send Send indications",
				l.unbound, len(l.relays), l.c.Timeout))
			return
		case <-tick.C:
		}
	}
}
