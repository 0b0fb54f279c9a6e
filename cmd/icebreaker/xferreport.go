package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/icebreaker-net/icebreaker/peer"
	"github.com/schollz/progressbar/v3"
)

// progressEvery throttles --json progress events.
const progressEvery = 250 * time.Millisecond

// transferReport shows one transfer as it goes: a progress bar when stdout
// is a terminal (and not --json), progress and path-change events with
// --json, nothing otherwise (the summary comes from reportDone). Its
// methods are safe for concurrent use: path changes come from the ICE
// agent's goroutine, progress from the transfer's.
type transferReport struct {
	o      *wormholeOptions
	stdout io.Writer
	now    func() time.Time // the clock of the progress throttle

	mu        sync.Mutex
	connected bool   // the path event is out: later pair changes are path changes
	kind      string // "direct" or "relay", as last reported
	name      string
	total     int64 // -1: unknown
	last      time.Time
	bar       *progressbar.ProgressBar
}

// stdoutIsTerminal reports whether w is a terminal; tests replace it.
var stdoutIsTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && hasTermios(f)
}

func newTransferReport(o *wormholeOptions, stdout io.Writer) *transferReport {
	return &transferReport{o: o, stdout: stdout, now: time.Now}
}

// connectedOn records that the connection is up on c's path and prints it.
func (r *transferReport) connectedOn(c *peer.Conn) {
	reportPath(r.o, c, r.stdout)
	r.mu.Lock()
	r.connected, r.kind = true, c.Path().Kind()
	r.mu.Unlock()
}

// pathChanged is peer.Config.OnPathChange: once connected, a new selected
// pair is a path-change event, and the bar shows the new path.
func (r *transferReport) pathChanged(p peer.Path) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.connected {
		return
	}
	r.kind = p.Kind()
	if r.bar != nil {
		r.bar.Describe(r.describeLocked())
		return
	}
	if r.o.json {
		ev := pathFields(p, "path-change")
		r.o.output(r.stdout, ev, "")
	}
}

// setPath records the path kind ("direct" or "relay") of a transfer that
// has no ICE pair to report it (magic-wormhole's transit).
func (r *transferReport) setPath(kind string) {
	r.mu.Lock()
	r.kind = kind
	r.mu.Unlock()
}

func (r *transferReport) describeLocked() string {
	return fmt.Sprintf("%s [%s]", r.name, r.kind)
}

// start begins the display of a transfer of total bytes (-1: unknown).
func (r *transferReport) start(name string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.name, r.total = name, total
	if r.o.json || !stdoutIsTerminal(r.stdout) {
		return
	}
	r.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(r.stdout),
		progressbar.OptionSetDescription(r.describeLocked()),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
	)
}

// progress is the transfer's progress callback: n bytes so far.
func (r *transferReport) progress(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		_ = r.bar.Set64(n)
		return
	}
	if !r.o.json {
		return
	}
	if now := r.now(); now.Sub(r.last) >= progressEvery || n == r.total {
		r.last = now
		ev := map[string]any{"event": "progress", "bytes": n, "path": r.kind}
		if r.total >= 0 {
			ev["total"] = r.total
		}
		r.o.output(r.stdout, ev, "")
	}
}

// finish ends the bar (completed or not).
func (r *transferReport) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		_ = r.bar.Exit()
		fmt.Fprintln(r.stdout)
		r.bar = nil
	}
}

// reportDone prints the final summary of a transfer of the offer, which
// res completed after took.
func reportDone(o *wormholeOptions, c *peer.Conn, stdout io.Writer, verb string, offer peer.Offer, dest string, res peer.Result, took time.Duration) {
	size := res.Offset + res.Bytes
	ev := pathEvent(c, "done")
	ev["name"], ev["kind"], ev["bytes"], ev["sha256"], ev["seconds"] = offer.Name, offer.Kind, size, hex.EncodeToString(res.SHA256), took.Seconds()
	ev["transferred"], ev["resumed_from"] = res.Bytes, res.Offset
	if offer.Kind == peer.KindDir {
		ev["files"], ev["dirs"] = offer.Files, offer.Dirs
	}
	if dest != "" {
		ev["file"] = dest
	}
	mbps := 0.0
	if took > 0 {
		mbps = float64(res.Bytes) * 8 / took.Seconds() / 1e6
	}
	what := fmt.Sprintf("%d bytes", size)
	if offer.Kind == peer.KindDir {
		what = fmt.Sprintf("%d files, %d directories, %d bytes", offer.Files, offer.Dirs, size)
	}
	if res.Offset > 0 {
		what += fmt.Sprintf(" (resumed at %d: %d sent now)", res.Offset, res.Bytes)
	}
	o.output(stdout, ev, fmt.Sprintf("%s %s: %s in %.2f s (%.1f Mbit/s), SHA-256 %x\npath: %v",
		verb, offer.Name, what, took.Seconds(), mbps, res.SHA256, c.Path()))
}
