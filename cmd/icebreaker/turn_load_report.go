package main

// The report of `icebreaker turn load`: error tally, summary, and the
// latency histogram.

import (
	"fmt"
	"io"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/stun/stunclient"
)

// errorTally counts errors by stage and message. It is safe for
// concurrent use.
type errorTally struct {
	mu    sync.Mutex
	total uint64
	kinds []loadError
}

// loadError is one kind of error and how often it happened.
type loadError struct {
	Stage string `json:"stage"`
	Error string `json:"error"`
	Count uint64 `json:"count"`
}

func (e *errorTally) add(stage string, err error) {
	msg := err.Error()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.total++
	for i := range e.kinds {
		if k := &e.kinds[i]; k.Stage == stage && k.Error == msg {
			k.Count++
			return
		}
	}
	if len(e.kinds) >= loadMaxErrorKinds-1 {
		// The last slot collects the kinds beyond the bound.
		if len(e.kinds) == loadMaxErrorKinds-1 {
			e.kinds = append(e.kinds, loadError{Stage: "other", Error: "errors of further kinds"})
		}
		e.kinds[len(e.kinds)-1].Count++
		return
	}
	e.kinds = append(e.kinds, loadError{Stage: stage, Error: msg, Count: 1})
}

func (e *errorTally) count() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.total
}

func (e *errorTally) list() []loadError {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]loadError{}, e.kinds...)
}

// loadReport is the summary of a run, printed as text or as JSON.
type loadReport struct {
	Server      string  `json:"server"`
	Mode        string  `json:"mode"`
	Peer        string  `json:"peer"` // "pairs", or the echo peer
	Size        int     `json:"size"`
	Rate        float64 `json:"rate"`
	Duration    float64 `json:"duration_s"`
	Interrupted bool    `json:"interrupted"`

	Requested       int     `json:"allocations_requested"`
	Allocations     int     `json:"allocations"`
	AllocFailed     int64   `json:"allocations_failed"`
	AllocSeconds    float64 `json:"allocate_s"`
	AllocPerSecond  float64 `json:"allocations_per_second"`
	ChannelsUnbound int     `json:"channels_unbound"`

	Sent          uint64         `json:"sent"`
	Received      uint64         `json:"received"`
	Lost          uint64         `json:"lost"`
	LossPercent   float64        `json:"loss_percent"`
	Reordered     uint64         `json:"reordered"`
	Foreign       uint64         `json:"foreign"` // datagrams that were not this run's
	SendSeconds   float64        `json:"send_s"`
	SentPerSecond float64        `json:"sent_per_second"`
	Latency       *loadLatency   `json:"latency,omitempty"`
	Relay         loadRelayStats `json:"relay"`
	ErrorCount    uint64         `json:"error_count"`
	Errors        []loadError    `json:"errors"`
}

// loadLatency are latency percentiles in milliseconds: one-way between
// paired allocations, round trip through an echo peer.
type loadLatency struct {
	Kind string  `json:"kind"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

// loadRelayStats sums turnclient.Stats over the allocations.
type loadRelayStats struct {
	SentIndications uint64 `json:"sent_indications"`
	SentChannelData uint64 `json:"sent_channel_data"`
	RecvIndications uint64 `json:"recv_indications"`
	RecvChannelData uint64 `json:"recv_channel_data"`
	Dropped         uint64 `json:"dropped"` // the reader lagged
	Malformed       uint64 `json:"malformed"`
	Unexpected      uint64 `json:"unexpected"`
}

// report summarises the run. Call it after run has returned.
func (l *loadRun) report(interrupted bool) *loadReport {
	o := l.o
	rep := &loadReport{
		Server: fmt.Sprintf("%s (%s)", l.server, o.client.stun.transport),
		Mode:   o.mode, Peer: "pairs", Size: o.size, Rate: o.rate, Duration: o.duration.Seconds(),
		Interrupted: interrupted,
		Requested:   o.allocations, Allocations: len(l.relays), AllocFailed: l.allocFailed.Load(),
		AllocSeconds: seconds(l.allocTime), ChannelsUnbound: l.unbound,
		Sent: l.sent.Load(), Received: l.received.Load(),
		Reordered: l.reordered.Load(), Foreign: l.foreign.Load(),
		SendSeconds: seconds(l.sendTime),
		ErrorCount:  l.errs.count(), Errors: l.errs.list(),
	}
	if o.peer.IsValid() {
		rep.Peer = o.peer.String()
	}
	if l.allocTime > 0 {
		rep.AllocPerSecond = math.Round(10*float64(len(l.relays))/l.allocTime.Seconds()) / 10
	}
	if l.sendTime > 0 {
		rep.SentPerSecond = math.Round(10*float64(rep.Sent)/l.sendTime.Seconds()) / 10
	}
	rep.Lost = rep.Sent - min(rep.Sent, rep.Received)
	rep.LossPercent = math.Round(100*percent(rep.Lost, rep.Sent)) / 100
	if q, n := l.lat.quantiles(0.5, 0.9, 0.99); n > 0 {
		kind := "one-way"
		if o.peer.IsValid() {
			kind = "round-trip"
		}
		rep.Latency = &loadLatency{Kind: kind, P50: ms(q[0]), P90: ms(q[1]), P99: ms(q[2]), Max: ms(time.Duration(l.lat.max.Load()))}
	}
	for _, r := range l.relays {
		st := r.Stats()
		s := &rep.Relay
		s.SentIndications += st.SentIndications
		s.SentChannelData += st.SentChannelData
		s.RecvIndications += st.RecvIndications
		s.RecvChannelData += st.RecvChannelData
		s.Dropped += st.Dropped
		s.Malformed += st.Malformed
		s.Unexpected += st.Unexpected
	}
	return rep
}

// seconds is d in seconds, rounded to the millisecond.
func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

func printLoad(w io.Writer, r *loadReport) {
	to := "to each other in pairs"
	if r.Peer != "pairs" {
		to = "to the echo peer " + r.Peer
	}
	fmt.Fprintf(w, "TURN load on %s: %s mode, %d-byte datagrams at %g/s for %s, %s\n",
		r.Server, r.Mode, r.Size, r.Rate, time.Duration(r.Duration*float64(time.Second)), to)
	if r.Interrupted {
		fmt.Fprintln(w, "  interrupted: the summary so far")
	}
	fmt.Fprintf(w, "  allocations  %d of %d in %s (%.1f/s)\n", r.Allocations, r.Requested,
		stunclient.FormatDuration(time.Duration(r.AllocSeconds*float64(time.Second))), r.AllocPerSecond)
	fmt.Fprintf(w, "  sent         %d in %s (%.1f/s)\n", r.Sent,
		stunclient.FormatDuration(time.Duration(r.SendSeconds*float64(time.Second))), r.SentPerSecond)
	fmt.Fprintf(w, "  received     %d (%d out of order)\n", r.Received, r.Reordered)
	fmt.Fprintf(w, "  lost         %d (%.2f%%)\n", r.Lost, r.LossPercent)
	if l := r.Latency; l != nil {
		fmt.Fprintf(w, "  latency      %s p50 %.3fms  p90 %.3fms  p99 %.3fms  max %.3fms\n", l.Kind, l.P50, l.P90, l.P99, l.Max)
	}
	s := r.Relay
	fmt.Fprintf(w, "  relay        sent %d ChannelData and %d Send indications; received %d ChannelData and %d Data indications; %d dropped\n",
		s.SentChannelData, s.SentIndications, s.RecvChannelData, s.RecvIndications, s.Dropped)
	if len(r.Errors) == 0 {
		fmt.Fprintln(w, "  errors       none")
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  error        %d x %s: %s\n", e.Count, e.Stage, e.Error)
	}
}

// latencyHist is a log-linear histogram of latencies: exact below 128 ns,
// then 64 buckets per power of two (1.6 % resolution). Receivers add to
// their own shard with atomic counters, so it is safe for concurrent use
// and costs no lock per datagram.
type latencyHist struct {
	shards [8]latencyShard
	max    atomic.Int64 // ns
}

type latencyShard struct{ b [histBuckets]atomic.Uint64 }

const (
	histSub     = 64 // buckets per power of two; 2*histSub is 1<<7
	histMaxBits = 41 // latencies are clamped below 2^41 ns (about 37 minutes)
	histBuckets = (histMaxBits - 5) * histSub
)

// histBucket returns the bucket of ns.
func histBucket(ns int64) int {
	ns = min(max(ns, 0), 1<<histMaxBits-1)
	if ns < 2*histSub {
		return int(ns)
	}
	shift := bits.Len64(uint64(ns)) - 7 // ns>>shift is in [histSub, 2*histSub)
	return shift*histSub + int(ns>>shift)
}

// histRange returns the smallest and the largest value of bucket i.
func histRange(i int) (lo, hi int64) {
	if i < 2*histSub {
		return int64(i), int64(i)
	}
	shift := i/histSub - 1
	m := int64(i%histSub + histSub)
	return m << shift, (m+1)<<shift - 1
}

func (h *latencyHist) add(s *latencyShard, d time.Duration) {
	ns := int64(d)
	s.b[histBucket(ns)].Add(1)
	for m := h.max.Load(); ns > m && !h.max.CompareAndSwap(m, ns); m = h.max.Load() {
	}
}

// quantiles returns the latencies at the ascending quantiles qs (each the
// middle of its bucket, at most the maximum) and the number of samples.
func (h *latencyHist) quantiles(qs ...float64) ([]time.Duration, uint64) {
	var counts [histBuckets]uint64
	var total uint64
	for s := range h.shards {
		for i := range counts {
			c := h.shards[s].b[i].Load()
			counts[i] += c
			total += c
		}
	}
	out := make([]time.Duration, len(qs))
	if total == 0 {
		return out, 0
	}
	mx, cum, k := h.max.Load(), uint64(0), 0
	for i, c := range counts {
		cum += c
		for ; k < len(qs) && float64(cum) >= max(1, math.Ceil(qs[k]*float64(total))); k++ {
			lo, hi := histRange(i)
			out[k] = time.Duration(min(lo+(hi-lo)/2, mx))
		}
	}
	return out, total
}

// ms is d in milliseconds with microsecond precision.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
