package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
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
// loadMaxRate × loadMaxDuration.
const (
	loadMaxAllocations = 10000
	loadMaxConcurrency = 1000
	loadMaxRate        = 1e6
	loadMaxDuration    = 10 * time.Minute
	// loadMaxSize fits a Send indication (36 bytes of headers) into the
	// 4 KiB message that servers commonly read at most.
	loadMaxSize = 4000
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
	loadHeaderLen = 29
	loadWarmup    = 1 // a datagram that makes turnclient bind a channel; not counted
)

var loadMagic = [4]byte{'I', 'B', 'L', 'D'}

// turnLoadOptions are the parsed flags of `icebreaker turn load`.
type turnLoadOptions struct {
	client      turnClientOptions // server, credentials, TLS and --timeout, shared with turn check
	allocations int
	concurrency int
	size        int
	rate        float64 // datagrams per second, all allocations together
	duration    time.Duration
	mode        string         // "channel" or "send"
	peer        netip.AddrPort // an echo peer; zero: the allocations send to each other
	maxLoss     float64        // percent of datagrams that may be lost before the run fails
	json        bool
}

func parseTurnLoadArgs(args []string, stderr io.Writer) (*turnLoadOptions, error) {
	fs := newFlagSet("turn load", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: icebreaker turn load [flags] turn:HOST[:PORT][?transport=udp|tcp] | turns:HOST[:PORT]")
		fmt.Fprint(stderr, `
Load-tests a TURN server: makes --allocations allocations, then sends --rate datagrams
per second (in total) of --size bytes for --duration, over channels or Send indications.
By default allocation i sends to allocation i^1 through the server (the server must
allow relaying between its own relayed addresses); with --peer, to a UDP echo server.
Reports sent, received, lost, latency percentiles and allocations per second.
Ctrl-C stops the run and prints what was measured so far.

flags:
`)
		fs.PrintDefaults()
	}
	o := &turnLoadOptions{}
	o.client.addFlags(fs, "time limit of each allocation, permission and the channel bindings")
	fs.IntVar(&o.allocations, "allocations", 10, fmt.Sprintf("number of allocations (1-%d; 2 or more without --peer)", loadMaxAllocations))
	fs.IntVar(&o.concurrency, "concurrency", 16, fmt.Sprintf("allocations (and permissions, deletions) in flight at once (1-%d)", loadMaxConcurrency))
	fs.IntVar(&o.size, "size", 100, fmt.Sprintf("datagram size in `BYTES` (%d-%d)", loadHeaderLen, loadMaxSize))
	fs.Float64Var(&o.rate, "rate", 100, fmt.Sprintf("datagrams per second in total, spread evenly over the allocations (at most %g)", float64(loadMaxRate)))
	fs.DurationVar(&o.duration, "duration", 10*time.Second, fmt.Sprintf("how long to send (at most %s)", loadMaxDuration))
	fs.StringVar(&o.mode, "mode", "channel", "channel: ChannelData after a ChannelBind; send: Send indications only")
	peer := fs.String("peer", "", "UDP echo server `IP:PORT` to send to, instead of pairing the allocations")
	fs.Float64Var(&o.maxLoss, "max-loss", 1, "fail (exit 1) when more than this `PERCENT` of the datagrams is lost")
	fs.BoolVar(&o.json, "json", false, "print the summary as JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	usage := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
	}
	switch {
	case len(pos) != 1:
		return nil, usage("want one turn: or turns: URI")
	case o.allocations < 1 || o.allocations > loadMaxAllocations:
		return nil, usage("--allocations must be 1-%d", loadMaxAllocations)
	case o.concurrency < 1 || o.concurrency > loadMaxConcurrency:
		return nil, usage("--concurrency must be 1-%d", loadMaxConcurrency)
	case o.size < loadHeaderLen || o.size > loadMaxSize:
		return nil, usage("--size must be %d-%d bytes", loadHeaderLen, loadMaxSize)
	case !(o.rate > 0) || o.rate > loadMaxRate: // !(>) also refuses NaN
		return nil, usage("--rate must be above 0 and at most %g datagrams per second", float64(loadMaxRate))
	case o.duration <= 0 || o.duration > loadMaxDuration:
		return nil, usage("--duration must be above 0 and at most %s", loadMaxDuration)
	case o.mode != "channel" && o.mode != "send":
		return nil, usage("--mode must be channel or send, not %q", o.mode)
	case !(o.maxLoss >= 0) || o.maxLoss > 100:
		return nil, usage("--max-loss must be a percentage, 0-100")
	}
	if err := o.client.validate(pos[0]); err != nil {
		return nil, err
	}
	if *peer != "" {
		p, err := netip.ParseAddrPort(*peer)
		if err != nil || p.Port() == 0 {
			return nil, usage("--peer %q: want IP:PORT", *peer)
		}
		o.peer = netip.AddrPortFrom(p.Addr().Unmap(), p.Port())
	} else if o.allocations < 2 {
		return nil, usage("pairing the allocations needs --allocations 2 or more (or give --peer)")
	}
	return o, nil
}

// loadRun is one run of `icebreaker turn load`: the allocations and what
// its senders and receivers count. runTurnLoad owns every goroutine the
// run starts and waits for all of them before it prints the summary.
type loadRun struct {
	o      *turnLoadOptions
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

func runTurnLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseTurnLoadArgs(args, stderr)
	if err != nil {
		return err
	}
	c, cancel := context.WithTimeout(ctx, o.client.stun.timeout)
	server, err := resolveServer(c, &o.client.stun)
	cancel()
	if err != nil {
		return err // "cannot resolve HOST: ..."
	}
	cfg, err := turnConfig(&o.client, server)
	if err != nil {
		return err
	}
	cfg.Queue = 1024
	if o.mode == "channel" {
		cfg.BindAfter = 1 // the warm-up datagram asks for the channel
	} else {
		// Config.BindAfter cannot be negative; this many Send
		// indications to one peer are never reached.
		cfg.BindAfter = math.MaxInt
	}
	if o.peer.IsValid() && o.peer.Addr().Is6() {
		cfg.Family = turnclient.IPv6
	}
	l := &loadRun{o: o, cfg: cfg, server: server, epoch: time.Now(), arrived: make(chan struct{}, 1)}
	var id [4]byte
	rand.Read(id[:])
	l.runID = binary.BigEndian.Uint32(id[:])

	stopProgress := func() {}
	if !o.json && isTerminal(stdout) {
		stop, done := make(chan struct{}), make(chan struct{})
		go func() { defer close(done); l.progress(stdout, stop) }()
		stopProgress = func() { close(stop); <-done }
	}
	runErr := l.run(ctx)
	stopProgress()

	rep := l.report(ctx.Err() != nil)
	if o.json {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printLoad(stdout, rep)
	}
	switch {
	case runErr != nil:
		return runErr
	case rep.Interrupted:
		return nil
	case rep.Sent == 0:
		return errors.New("no datagram could be sent")
	case rep.Received == 0:
		return errors.New("no datagram came back through the relay: the server or a firewall drops relayed traffic")
	case rep.AllocFailed > 0:
		first := ""
		if len(rep.Errors) > 0 {
			first = " (" + rep.Errors[0].Error + ")"
		}
		return fmt.Errorf("%d of %d allocations failed%s", rep.AllocFailed, rep.Requested, first)
	case rep.LossPercent > o.maxLoss:
		return fmt.Errorf("%.2f%% of the datagrams were lost, more than --max-loss %g%%", rep.LossPercent, o.maxLoss)
	}
	return nil
}

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
		forEach(context.Background(), len(l.relays), max(l.o.concurrency, 256), func(i int) { l.relays[i].Close() })
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
	case !l.o.peer.IsValid() && len(l.relays) < 2:
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
	if l.o.mode == "channel" {
		l.bindChannels(ctx)
	}
	if ctx.Err() != nil {
		return nil
	}
	sendCtx, cancel := context.WithTimeout(ctx, l.o.duration)
	defer cancel()
	senders = l.startSenders(sendCtx)
	select {
	case <-senders: // all sent
	case <-sendCtx.Done():
		// A sender blocked in a write to a stalled TCP or TLS
		// connection returns when the relays close; the drain does not
		// wait for it.
		t := time.NewTimer(l.o.client.stun.timeout)
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

// allocate makes the allocations, o.concurrency at a time, and keeps those
// that succeeded (in order) in l.relays.
func (l *loadRun) allocate(ctx context.Context) {
	slots := make([]*turnclient.Relay, l.o.allocations)
	start := time.Now()
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	forEach(stopCtx, len(slots), l.o.concurrency, func(i int) {
		c, cancel := context.WithTimeout(stopCtx, l.o.client.stun.timeout)
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
		if l.o.peer.IsValid() {
			l.targets[i] = net.UDPAddrFromAddrPort(l.o.peer)
			add(i, l.o.peer.Addr())
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
	forEach(stopCtx, len(perms), l.o.concurrency, func(k int) {
		c, cancel := context.WithTimeout(stopCtx, l.o.client.stun.timeout)
		err := l.relays[perms[k].relay].CreatePermission(c, perms[k].ip)
		cancel()
		if err != nil && ctx.Err() == nil && (stopCtx.Err() == nil || definitiveLoadError(err)) {
			l.errs.add("permission", turncheck.WithForbiddenHint(explainLoadError(err, l.server), l.o.peer.IsValid()))
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
// 11), at most o.client.stun.timeout. An allocation whose channel is not
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
	deadline := time.NewTimer(l.o.client.stun.timeout)
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
				l.unbound, len(l.relays), l.o.client.stun.timeout))
			return
		case <-tick.C:
		}
	}
}

// newDatagram returns a datagram of o.size bytes with the run's header.
func (l *loadRun) newDatagram() []byte {
	b := make([]byte, l.o.size)
	copy(b, loadMagic[:])
	binary.BigEndian.PutUint32(b[4:], l.runID)
	return b
}

// startSenders starts the senders, which stop when ctx is done, and
// returns a channel closed when all have returned. Each sender owns a
// share of the allocations (round robin) and paces its share of the rate.
func (l *loadRun) startSenders(ctx context.Context) <-chan struct{} {
	n := len(l.relays)
	w := min(n, max(4, 2*runtime.GOMAXPROCS(0)))
	l.sendStart.Store(time.Since(l.epoch).Nanoseconds())
	l.phase.Store(loadPhaseSend)
	// The run sends round(rate × duration) datagrams in all; each sender
	// its share, so that the shares add up exactly.
	total := math.Round(l.o.rate * l.o.duration.Seconds())
	var wg sync.WaitGroup
	for k, before := 0, 0; k < w; k++ {
		var mine []int
		for i := k; i < n; i += w {
			mine = append(mine, i)
		}
		limit := uint64(math.Floor(total*float64(before+len(mine))/float64(n)) - math.Floor(total*float64(before)/float64(n)))
		before += len(mine)
		rate := l.o.rate * float64(len(mine)) / float64(n)
		wg.Go(func() { l.sender(ctx, mine, rate, limit) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

// sender sends rate datagrams per second, spread round robin over the
// allocations mine, until it has sent limit or ctx is done. It keeps the
// average rate: after a late wake-up it sends the datagrams due in one
// burst.
func (l *loadRun) sender(ctx context.Context, mine []int, rate float64, limit uint64) {
	buf := l.newDatagram()
	seq := make([]uint64, len(mine))
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var attempts uint64
	next := 0
	for {
		due := min(uint64(time.Since(start).Seconds()*rate)+1, limit) // the first at once
		if attempts == limit {
			return
		}
		for burst := 0; attempts < due && burst < loadMaxBurst; burst++ {
			if ctx.Err() != nil {
				return
			}
			i := mine[next]
			binary.BigEndian.PutUint32(buf[9:], uint32(i))
			binary.BigEndian.PutUint64(buf[13:], seq[next])
			binary.BigEndian.PutUint64(buf[21:], uint64(time.Since(l.epoch)))
			if _, err := l.relays[i].WriteTo(buf, l.targets[i]); err == nil {
				l.sent.Add(1)
			} else if ctx.Err() == nil {
				l.errs.add("send", stripOpError(err))
			}
			seq[next]++
			attempts++
			next = (next + 1) % len(mine)
		}
		wait := time.Duration(float64(attempts)/rate*float64(time.Second)) - time.Since(start)
		if wait <= 0 {
			if ctx.Err() != nil {
				return
			}
			continue // behind: send the next burst now
		}
		timer.Reset(max(wait, loadMinTick))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// receive reads what arrives at allocation i until it is closed or lost,
// and counts this run's datagrams and their latency.
func (l *loadRun) receive(i int, r *turnclient.Relay) {
	buf := make([]byte, l.o.size+64)
	shard := &l.lat.shards[i%len(l.lat.shards)]
	last := make(map[uint32]uint64) // sender -> highest sequence number + 1
	for {
		n, _, err := r.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.errs.add("receive", stripOpError(err))
			}
			return
		}
		now := time.Since(l.epoch)
		if n < loadHeaderLen || [4]byte(buf[:4]) != loadMagic || binary.BigEndian.Uint32(buf[4:]) != l.runID {
			l.foreign.Add(1)
			continue
		}
		if buf[8]&loadWarmup != 0 {
			continue
		}
		from, seq := binary.BigEndian.Uint32(buf[9:]), binary.BigEndian.Uint64(buf[13:])
		if seq < last[from] {
			l.reordered.Add(1)
		} else {
			last[from] = seq + 1
		}
		l.lat.add(shard, now-time.Duration(binary.BigEndian.Uint64(buf[21:])))
		l.received.Add(1)
		select {
		case l.arrived <- struct{}{}:
		default:
		}
	}
}

// drain waits until every datagram sent has arrived, at most limit.
func (l *loadRun) drain(limit time.Duration) {
	t := time.NewTimer(limit)
	defer t.Stop()
	for l.received.Load() < l.sent.Load() {
		select {
		case <-l.arrived:
		case <-t.C:
			return
		}
	}
}

// progress rewrites one status line every second until stop is closed.
func (l *loadRun) progress(w io.Writer, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			fmt.Fprint(w, "\r\x1b[K")
			return
		case <-t.C:
		}
		var s string
		switch l.phase.Load() {
		case loadPhaseAllocate:
			s = fmt.Sprintf("allocating: %d of %d, %d failed", l.allocated.Load(), l.o.allocations, l.allocFailed.Load())
		case loadPhaseSetup:
			s = fmt.Sprintf("%d allocations: creating permissions and channels", len(l.relays))
		case loadPhaseSend:
			elapsed := time.Duration(time.Since(l.epoch).Nanoseconds() - l.sendStart.Load())
			sent, recv := l.sent.Load(), l.received.Load()
			s = fmt.Sprintf("%s/%s  sent %d  received %d  in flight or lost %.2f%%  errors %d",
				elapsed.Round(time.Second), l.o.duration, sent, recv, percent(sent-min(sent, recv), sent), l.errs.count())
		default:
			s = "draining and releasing the allocations"
		}
		fmt.Fprintf(w, "\r%s\x1b[K", s)
	}
}

// isTerminal reports whether w is a character device (a terminal), where
// a progress line rewritten with \r makes sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func percent(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

// explainLoadError is turncheck.Explain without the waiting time of a
// timeout, which differs from one allocation to the next, so that equal
// failures are tallied as one.
func explainLoadError(err error, server netip.AddrPort) error {
	if te, ok := errors.AsType[*stunclient.TimeoutError](err); ok {
		return fmt.Errorf("no reply from %s: the server is down or overloaded, the port is wrong, or a firewall drops the traffic", te.Server)
	}
	return turncheck.Explain(err, server)
}

// stripOpError drops the addresses of a *net.OpError, which differ per
// allocation, so that equal failures are tallied as one.
func stripOpError(err error) error {
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Err != nil {
		return oe.Err
	}
	return err
}
