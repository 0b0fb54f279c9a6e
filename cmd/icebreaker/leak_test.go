package main

import (
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	goroutineHeader = regexp.MustCompile(`^goroutine (\d+) `)
	createdIn       = regexp.MustCompile(`created by .* in goroutine (\d+)`)
)

// goroutines parses runtime.Stack(all): each goroutine's ID, the ID of the
// goroutine that created it (0 if unknown) and its stack.
func goroutines() (parent map[int]int, stacks map[int]string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	parent, stacks = map[int]int{}, map[int]string{}
	for _, block := range strings.Split(string(buf), "\n\n") {
		m := goroutineHeader.FindStringSubmatch(block)
		if m == nil {
			continue
		}
		id, _ := strconv.Atoi(m[1])
		stacks[id] = block
		if c := createdIn.FindStringSubmatch(block); c != nil {
			parent[id], _ = strconv.Atoi(c[1])
		}
	}
	return parent, stacks
}

// currentGoroutine returns the calling goroutine's ID.
func currentGoroutine() int {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	m := goroutineHeader.FindSubmatch(buf)
	id, _ := strconv.Atoi(string(m[1]))
	return id
}

// checkNoLeak runs f on the calling goroutine and fails the test if a
// goroutine that f started (directly, or through goroutines it started)
// is still running shortly after f returned. Unlike a count of all
// goroutines, it is not fooled by parallel tests.
func checkNoLeak(t *testing.T, name string, f func()) {
	t.Helper()
	reportLeaks(t, name, leaksOf(f))
}

// reportLeaks fails the test if leaked, the stacks that leaksOf returned
// for name, is not empty.
func reportLeaks(t *testing.T, name string, leaked []string) {
	t.Helper()
	if len(leaked) > 0 {
		t.Errorf("%s left %d goroutines behind:\n%s", name, len(leaked), strings.Join(leaked, "\n\n"))
	}
}

// leaksOf runs f and returns the stacks of the goroutines f started that
// still run after a bounded wait.
func leaksOf(f func()) []string {
	root := currentGoroutine()
	_, before := goroutines()
	f()
	var leaked []string
	for range 200 {
		parent, stacks := goroutines()
		leaked = leaked[:0]
		for id, st := range stacks {
			if _, old := before[id]; old || id == root {
				continue
			}
			if strings.Contains(st, "os/signal.loop") {
				continue // the process's one signal reader, started by the first signal.Notify; it never ends
			}
			// Walk up the creators: a goroutine of f's descends from
			// root, or from a goroutine created while f ran (absent from
			// the first snapshot) that has exited since, through
			// goroutines created while f ran. One created by a goroutine
			// that ran before f (a server the test started, another
			// test) is not f's. (Goroutine IDs are handed out in batches
			// per P, so they do not order.)
			for p, hops := parent[id], 0; p != 0 && hops < 64; p, hops = parent[p], hops+1 {
				_, alive := stacks[p]
				_, old := before[p]
				if p == root || (!alive && !old) {
					leaked = append(leaked, st)
					break
				}
				if !alive || old {
					break
				}
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		time.Sleep(5 * time.Millisecond) // bounded wait for exiting goroutines
	}
	return leaked
}

func TestLeaksOf(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	// A goroutine of another "test" does not count.
	go func() { <-stop }()
	if l := leaksOf(func() {}); len(l) != 0 {
		t.Fatalf("leaks of a function that starts nothing: %v", l)
	}
	// A grandchild still running does.
	l := leaksOf(func() {
		done := make(chan struct{})
		go func() {
			go func() { <-stop }()
			close(done)
		}()
		<-done
	})
	if len(l) != 1 || !strings.Contains(l[0], "TestLeaksOf") {
		t.Fatalf("leaks %v, want the one grandchild", l)
	}
	// Nor does one that a goroutine started before f (as a server the
	// test runs) starts while f runs, though that one descends from the
	// caller.
	spawn, spawned := make(chan struct{}), make(chan struct{})
	go func() {
		<-spawn
		go func() { <-stop }()
		close(spawned)
		<-stop
	}()
	if l := leaksOf(func() { close(spawn); <-spawned }); len(l) != 0 {
		t.Fatalf("leaks of a function whose server started a goroutine: %v", l)
	}
}
