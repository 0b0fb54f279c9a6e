package turnloadcmd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/icebreaker-net/icebreaker/cmd/icebreaker/internal/turncheck"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
)

// newDatagram returns a datagram of c.Size bytes with the run's header.
func (l *loadRun) newDatagram() []byte {
	b := make([]byte, l.c.Size)
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
	total := math.Round(l.c.Rate * l.c.Duration.Seconds())
	var wg sync.WaitGroup
	for k, before := 0, 0; k < w; k++ {
		var mine []int
		for i := k; i < n; i += w {
			mine = append(mine, i)
		}
		limit := uint64(math.Floor(total*float64(before+len(mine))/float64(n)) - math.Floor(total*float64(before)/float64(n)))
		before += len(mine)
		rate := l.c.Rate * float64(len(mine)) / float64(n)
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
	buf := make([]byte, l.c.Size+64)
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
		if n < HeaderLen || [4]byte(buf[:4]) != loadMagic || binary.BigEndian.Uint32(buf[4:]) != l.runID {
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
			s = fmt.Sprintf("allocating: %d of %d, %d failed", l.allocated.Load(), l.c.Allocations, l.allocFailed.Load())
		case loadPhaseSetup:
			s = fmt.Sprintf("%d allocations: creating permissions and channels", len(l.relays))
		case loadPhaseSend:
			elapsed := time.Duration(time.Since(l.epoch).Nanoseconds() - l.sendStart.Load())
			sent, recv := l.sent.Load(), l.received.Load()
			s = fmt.Sprintf("%s/%s  sent %d  received %d  in flight or lost %.2f%%  errors %d",
				elapsed.Round(time.Second), l.c.Duration, sent, recv, percent(sent-min(sent, recv), sent), l.errs.count())
		default:
			s = "draining and releasing the allocations"
		}
		fmt.Fprintf(w, "\r%s\x1b[K", s)
	}
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
