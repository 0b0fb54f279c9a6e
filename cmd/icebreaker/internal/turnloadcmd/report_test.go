package turnloadcmd

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

func TestLatencyHist(t *testing.T) {
	// Every value falls in a bucket whose range holds it, and buckets
	// follow each other without gaps.
	for _, ns := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<20 + 12345, 1<<41 - 1} {
		lo, hi := histRange(histBucket(ns))
		if ns < lo || ns > hi {
			t.Errorf("%d ns in bucket %d = [%d, %d]", ns, histBucket(ns), lo, hi)
		}
	}
	for i := 1; i < histBuckets; i++ {
		_, prevHi := histRange(i - 1)
		if lo, hi := histRange(i); lo != prevHi+1 || hi < lo || hi-lo > lo/histSub {
			t.Fatalf("bucket %d = [%d, %d] after one ending at %d", i, lo, hi, prevHi)
		}
	}
	if b := histBucket(math.MaxInt64); b != histBuckets-1 {
		t.Errorf("a huge value goes to bucket %d, want the last (%d)", b, histBuckets-1)
	}
	if b := histBucket(-5); b != 0 {
		t.Errorf("a negative value goes to bucket %d", b)
	}

	var h latencyHist
	if _, n := h.quantiles(0.5); n != 0 {
		t.Fatalf("empty histogram counts %d", n)
	}
	for i := 1; i <= 1000; i++ { // 1 µs to 1 ms, spread over the shards
		h.add(&h.shards[i%len(h.shards)], time.Duration(i)*time.Microsecond)
	}
	q, n := h.quantiles(0.5, 0.9, 0.99, 1)
	if n != 1000 {
		t.Fatalf("count %d", n)
	}
	for i, want := range []time.Duration{500 * time.Microsecond, 900 * time.Microsecond, 990 * time.Microsecond, time.Millisecond} {
		if d := q[i] - want; d < -want/50 || d > want/50 {
			t.Errorf("quantile %d = %v, want %v ± 2%%", i, q[i], want)
		}
	}
	if got := time.Duration(h.max.Load()); got != time.Millisecond {
		t.Errorf("max %v", got)
	}
}

func TestErrorTally(t *testing.T) {
	var e errorTally
	for i := range 30 {
		e.add("send", fmt.Errorf("error %d", i%15))
	}
	e.add("send", errors.New("error 0"))
	kinds := e.list()
	if e.count() != 31 || len(kinds) != loadMaxErrorKinds {
		t.Fatalf("count %d, %d kinds: %+v", e.count(), len(kinds), kinds)
	}
	if kinds[0].Count != 3 || kinds[0].Error != "error 0" {
		t.Errorf("first kind %+v", kinds[0])
	}
	var sum uint64
	for _, k := range kinds {
		sum += k.Count
	}
	if last := kinds[len(kinds)-1]; last.Stage != "other" || last.Count != 12 || sum != 31 {
		t.Errorf("last kind %+v, sum %d", last, sum)
	}
}
