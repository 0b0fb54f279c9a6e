package turnloadcmd

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

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
