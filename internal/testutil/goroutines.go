package testutil

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// settleTimeout is how long CheckGoroutines waits for exiting goroutines.
const settleTimeout = 5 * time.Second

// SettleGoroutines waits, for at most within, until no more than n
// goroutines run, polling runtime.NumGoroutine. When some remain it returns
// an error that counts them and holds every goroutine's stack, so that the
// one left behind can be found.
func SettleGoroutines(n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Errorf("testutil: %d goroutines left behind (had %d before):\n%s",
				runtime.NumGoroutine(), n, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// CheckGoroutines fails t (t.Errorf) unless the number of goroutines comes
// back down to before, the runtime.NumGoroutine a test took before it
// started a server, within a few seconds. It belongs in a test that is not
// parallel: other tests' goroutines count too.
func CheckGoroutines(t testing.TB, before int) {
	t.Helper()
	if err := SettleGoroutines(before, settleTimeout); err != nil {
		t.Errorf("%v", err)
	}
}
