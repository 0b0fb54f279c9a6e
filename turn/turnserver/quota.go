package turnserver

import (
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/turn"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

// bucket is a token bucket over bytes, in the form of the generic cell
// rate algorithm: one atomic "theoretical arrival time" instead of a
// token count and a timestamp, so that taking tokens is one
// compare-and-swap and needs no lock. It holds one second's worth of
// bytes (the burst); a packet larger than that passes when the bucket is
// full.
type bucket struct {
	tat       atomic.Int64 // on the server's monotonic clock, in ns
	nsPerByte float64
}

// bucketBurst is how much unused rate a bucket saves up.
const bucketBurst = int64(time.Second)

func newBucket(bytesPerSecond int64) *bucket {
	if bytesPerSecond <= 0 {
		return nil
	}
	return &bucket{nsPerByte: float64(time.Second) / float64(bytesPerSecond)}
}

// take reports whether n bytes may pass at time now, and if so takes
// their tokens. A nil bucket is unlimited.
func (b *bucket) take(now int64, n int) bool {
	if b == nil {
		return true
	}
	cost := int64(float64(n) * b.nsPerByte)
	for {
		old := b.tat.Load()
		tat := max(old, now)
		if tat > now && tat+cost-now > bucketBurst {
			return false
		}
		if b.tat.CompareAndSwap(old, tat+cost) {
			return true
		}
	}
}

// quotaKey is the name quotas count a request against: the username, or
// for TURN REST credentials ("expiry:user") the user part, so that fresh
// credentials for the same user share its quota.
func quotaKey(r turnauth.Result) string {
	if r.REST {
		if _, u, ok := turn.ParseRESTUsername(r.Username); ok && u != "" {
			return u
		}
	}
	return r.Username
}

// user is the quota state of one user: how many allocations it holds
// (guarded by Server.mu), its Connects in progress and its bandwidth
// bucket. Allocations of the
// user share it; it lives while any of them does.
type user struct {
	name   string
	allocs int
	// connecting counts the user's RFC 6062 Connects still dialling
	// (guarded by Server.mu).
	connecting int
	bucket     *bucket
}
