// Command loadgen loads a magic-wormhole mailbox server with raw mailbox
// commands and reports what bench/rendezvous/run.sh compares:
//
//	rate: rendezvous completed per second. A rendezvous is two fresh
//	      WebSocket clients: A binds, allocates, claims, opens and adds a
//	      pake; B binds, claims, opens, adds its pake; both release, add a
//	      version, and close happy once they have the other's version.
//	      Bodies are random hex of PAKE and version sizes. It also gives
//	      the p50/p99 latency of a message through the mailbox: from the
//	      add of one side to its delivery to the other.
//	mem:  opens N mailboxes (allocate, claim, open, add a pake, then
//	      disconnect; the mailboxes stay until pruned), so that the script
//	      can read the server's RSS before and after.
//
// It talks to loopback only; every loop is bounded in count and time.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

const appID = "lothar.com/wormhole/text-or-file-xfer"

func main() {
	url := flag.String("url", "", "mailbox URL, ws://127.0.0.1:PORT/v1")
	mode := flag.String("mode", "rate", "rate or mem")
	dur := flag.Duration("duration", 10*time.Second, "rate: how long to run")
	conc := flag.Int("c", 16, "rate: rendezvous in flight")
	maxN := flag.Int("n", 1000000, "rate: at most this many rendezvous")
	mailboxes := flag.Int("mailboxes", 2000, "mem: mailboxes to open")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "loadgen: -url is required")
		os.Exit(2)
	}
	var err error
	switch *mode {
	case "rate":
		err = runRate(*url, *dur, *conc, *maxN)
	case "mem":
		err = runMem(*url, *mailboxes)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type msg struct {
	Type      string `json:"type"`
	Nameplate string `json:"nameplate"`
	Mailbox   string `json:"mailbox"`
	Side      string `json:"side"`
	Phase     string `json:"phase"`
	Body      string `json:"body"`
	Error     string `json:"error"`
}

type peer struct {
	ws   *websocket.Conn
	side string
}

func dial(ctx context.Context, url string) (*peer, error) {
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	p := &peer{ws: ws, side: randHex(5)}
	if _, err := p.expect(ctx, "welcome"); err != nil {
		ws.CloseNow()
		return nil, err
	}
	return p, p.send(ctx, map[string]any{"type": "bind", "appid": appID, "side": p.side, "id": randHex(2)})
}

func (p *peer) send(ctx context.Context, m map[string]any) error {
	b, _ := json.Marshal(m)
	return p.ws.Write(ctx, websocket.MessageText, b)
}

// expect reads until a message of type typ, skipping acks and (unless
// typ is "message") messages.
func (p *peer) expect(ctx context.Context, typ string) (msg, error) {
	for {
		_, b, err := p.ws.Read(ctx)
		if err != nil {
			return msg{}, err
		}
		var m msg
		if err := json.Unmarshal(b, &m); err != nil {
			return msg{}, err
		}
		switch m.Type {
		case typ:
			return m, nil
		case "error":
			return msg{}, errors.New("server error: " + m.Error)
		}
	}
}

// peerMessage waits for the other side's message of phase and returns
// when it arrived.
func (p *peer) peerMessage(ctx context.Context, phase string) (time.Time, error) {
	for {
		m, err := p.expect(ctx, "message")
		if err != nil {
			return time.Time{}, err
		}
		if m.Side != p.side && m.Phase == phase {
			return time.Now(), nil
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// rendezvous runs one rendezvous and returns the delivery latencies of
// the four cross messages.
func rendezvous(ctx context.Context, url string) ([]time.Duration, error) {
	a, err := dial(ctx, url)
	if err != nil {
		return nil, err
	}
	defer a.ws.CloseNow()
	a.send(ctx, map[string]any{"type": "allocate"})
	al, err := a.expect(ctx, "allocated")
	if err != nil {
		return nil, err
	}
	a.send(ctx, map[string]any{"type": "claim", "nameplate": al.Nameplate})
	cl, err := a.expect(ctx, "claimed")
	if err != nil {
		return nil, err
	}
	a.send(ctx, map[string]any{"type": "open", "mailbox": cl.Mailbox})
	a.send(ctx, map[string]any{"type": "add", "phase": "pake", "body": randHex(33)})

	b, err := dial(ctx, url)
	if err != nil {
		return nil, err
	}
	defer b.ws.CloseNow()
	b.send(ctx, map[string]any{"type": "claim", "nameplate": al.Nameplate})
	if _, err := b.expect(ctx, "claimed"); err != nil {
		return nil, err
	}
	b.send(ctx, map[string]any{"type": "open", "mailbox": cl.Mailbox})
	if _, err := b.peerMessage(ctx, "pake"); err != nil { // stored: no latency
		return nil, err
	}
	var lat []time.Duration
	sent := time.Now()
	b.send(ctx, map[string]any{"type": "add", "phase": "pake", "body": randHex(33)})
	got, err := a.peerMessage(ctx, "pake")
	if err != nil {
		return nil, err
	}
	lat = append(lat, got.Sub(sent))
	// Both release and send their version; each waits for the other's.
	errs := make(chan error, 2)
	var mu sync.Mutex
	for _, p := range []*peer{a, b} {
		go func() {
			p.send(ctx, map[string]any{"type": "release", "nameplate": al.Nameplate})
			start := time.Now()
			p.send(ctx, map[string]any{"type": "add", "phase": "version", "body": randHex(60)})
			got, err := p.peerMessage(ctx, "version")
			if err == nil {
				mu.Lock()
				lat = append(lat, got.Sub(start))
				mu.Unlock()
				p.send(ctx, map[string]any{"type": "close", "mailbox": cl.Mailbox, "mood": "happy"})
				_, err = p.expect(ctx, "closed")
			}
			errs <- err
		}()
	}
	return lat, errors.Join(<-errs, <-errs)
}

func runRate(url string, dur time.Duration, conc, maxN int) error {
	ctx, cancel := context.WithTimeout(context.Background(), dur+30*time.Second)
	defer cancel()
	deadline := time.Now().Add(dur)
	var done, failed atomic.Int64
	var mu sync.Mutex
	var lats []time.Duration
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for time.Now().Before(deadline) && done.Load() < int64(maxN) {
				rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
				l, err := rendezvous(rctx, url)
				rcancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				done.Add(1)
				mu.Lock()
				lats = append(lats, l...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lats)
	pct := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		return float64(lats[int(p*float64(len(lats)-1))].Microseconds()) / 1000
	}
	fmt.Printf("rendezvous=%d failed=%d seconds=%.2f rate=%.1f p50_ms=%.3f p99_ms=%.3f\n",
		done.Load(), failed.Load(), el.Seconds(), float64(done.Load())/el.Seconds(), pct(0.50), pct(0.99))
	if e := firstErr.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "loadgen: first error:", e)
	}
	return nil
}

// runMem opens n mailboxes, each from its own connection, which then
// disconnects, so that it is the mailboxes that are measured.
func runMem(url string, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			p, err := dial(ctx, url)
			if err != nil {
				failed.Add(1)
				return
			}
			defer p.ws.CloseNow()
			p.send(ctx, map[string]any{"type": "allocate"})
			al, err := p.expect(ctx, "allocated")
			if err == nil {
				p.send(ctx, map[string]any{"type": "claim", "nameplate": al.Nameplate})
				var cl msg
				if cl, err = p.expect(ctx, "claimed"); err == nil {
					p.send(ctx, map[string]any{"type": "open", "mailbox": cl.Mailbox})
					p.send(ctx, map[string]any{"type": "add", "phase": "pake", "body": randHex(33)})
					_, err = p.peerMessageOwn(ctx)
				}
			}
			if err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	fmt.Printf("mailboxes=%d failed=%d\n", n, failed.Load())
	return nil
}

// peerMessageOwn waits for the echo of our own message: it is stored.
func (p *peer) peerMessageOwn(ctx context.Context) (msg, error) {
	return p.expect(ctx, "message")
}
