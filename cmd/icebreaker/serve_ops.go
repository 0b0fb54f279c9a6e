package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/icebreaker-net/icebreaker/stun/stunserver"
)

// The operations side of a running `icebreaker serve`: SIGHUP reloads the
// configuration, SIGTERM drains (with drain.timeout) or stops, and the
// admin endpoint asks for the same and reports status and sessions.

// defaultDrainWait is how long `icebreaker drain` waits for allocations
// when drain.timeout is 0.
const defaultDrainWait = 10 * time.Minute

// drainPoll is how often a draining server looks whether its allocations
// have ended.
var drainPoll = 200 * time.Millisecond

// rateInterval is how often the control loop samples the counters for
// the rates `icebreaker status` shows.
const rateInterval = 5 * time.Second

// daemon is the state of a running server that the control loop and the
// admin endpoint share. It is safe for concurrent use.
type daemon struct {
	started   time.Time
	logger    *slog.Logger
	servers   []*stunserver.Server
	endpoints []stunserver.Endpoint
	tr        *turnRelay // nil when TURN is off
	rl        *reloader

	reloadMu sync.Mutex // serialises reloads

	mu       sync.Mutex // guards the fields below
	draining bool
	deadline time.Time // of the drain
	wake     chan struct{}
	prev     rateSample // counters rateInterval ago, for rates
	last     rateSample
}

type rateSample struct {
	at               time.Time
	toPeer, toClient uint64 // bytes
}

func newDaemon(logger *slog.Logger, servers []*stunserver.Server, endpoints []stunserver.Endpoint, tr *turnRelay, rl *reloader) *daemon {
	d := &daemon{started: time.Now(), logger: logger, servers: servers, endpoints: endpoints, tr: tr, rl: rl, wake: make(chan struct{}, 1)}
	d.prev = d.sample()
	d.last = d.prev
	return d
}

func (d *daemon) sample() rateSample {
	s := rateSample{at: time.Now()}
	if d.tr != nil {
		st := d.tr.server.Stats()
		s.toPeer, s.toClient = st.ToPeerBytes, st.ToClientBytes
	}
	return s
}

// reload re-reads the configuration; see reloader.reload.
func (d *daemon) reload(ctx context.Context) ([]string, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	return d.rl.reload(ctx)
}

// drainConfig returns drain.timeout and drain.alternate_server of the
// running configuration.
func (d *daemon) drainConfig() (time.Duration, netip.AddrPort) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	return d.rl.cur.Drain.Timeout, d.rl.cur.Drain.AlternateAddr()
}

// startDrain stops new allocations and makes the control loop stop the
// server once the allocations have ended or timeout has passed. A second
// call keeps the earlier deadline unless timeout ends sooner.
func (d *daemon) startDrain(timeout time.Duration) (allocations int) {
	_, alt := d.drainConfig()
	if d.tr != nil {
		d.tr.server.Drain(alt)
		allocations = d.tr.server.Stats().Allocations
	}
	d.mu.Lock()
	deadline := time.Now().Add(timeout)
	if !d.draining || deadline.Before(d.deadline) {
		d.deadline = deadline
	}
	d.draining = true
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	to := "none (508)"
	if alt.IsValid() {
		to = alt.String()
	}
	d.logger.Info("draining: new allocations are refused, existing ones go on", "allocations", allocations, "timeout", timeout, "alternate_server", to)
	return allocations
}

// drainState reports whether the server drains, and until when.
func (d *daemon) drainState() (bool, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.draining, d.deadline
}

// notifySignals starts catching SIGHUP and SIGTERM for run. serve calls
// it before it says that it listens, so that a service manager's SIGTERM
// that comes at once is a clean stop, not the default death by signal.
func notifySignals() chan os.Signal {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)
	return sigs
}

// run is the control loop: it handles SIGHUP and SIGTERM (from sigs, of
// notifySignals, which it stops), ends a drain and samples rates, until
// ctx is done or it calls stop (to end the server). It returns when
// either happened.
func (d *daemon) run(ctx context.Context, stop context.CancelFunc, sigs chan os.Signal) {
	defer signal.Stop(sigs)
	rates := time.NewTicker(rateInterval)
	defer rates.Stop()
	var poll <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.logger.Info("SIGHUP: reloading the configuration")
				d.reload(ctx) // logs its outcome
				continue
			}
			timeout, _ := d.drainConfig()
			if timeout <= 0 {
				d.logger.Info("SIGTERM: stopping")
				stop()
				return
			}
			d.logger.Info("SIGTERM: draining before stopping")
			d.startDrain(timeout)
		case <-d.wake:
			if poll == nil {
				t := time.NewTicker(drainPoll)
				defer t.Stop()
				poll = t.C
			}
		case <-poll:
			_, deadline := d.drainState()
			left := 0
			if d.tr != nil {
				left = d.tr.server.Stats().Allocations
			}
			if left == 0 || !time.Now().Before(deadline) {
				d.logger.Info("drained: stopping", "allocations_left", left)
				stop()
				return
			}
		case <-rates.C:
			s := d.sample()
			d.mu.Lock()
			d.prev, d.last = d.last, s
			d.mu.Unlock()
		}
	}
}

// rates returns the relayed bytes per second over the last sampling
// interval.
func (d *daemon) rates() (toPeer, toClient float64) {
	d.mu.Lock()
	a, b := d.prev, d.last
	d.mu.Unlock()
	if dt := b.at.Sub(a.at).Seconds(); dt > 0 {
		return float64(b.toPeer-a.toPeer) / dt, float64(b.toClient-a.toClient) / dt
	}
	return 0, 0
}

// statusReport is what `icebreaker status` shows; the admin endpoint
// sends it as JSON.
type statusReport struct {
	Version   string      `json:"version"`
	Started   time.Time   `json:"started"`
	Uptime    string      `json:"uptime"`
	Ready     bool        `json:"ready"`
	Draining  bool        `json:"draining"`
	DrainLeft string      `json:"drain_left,omitempty"` // time left until a drain stops the server
	Listeners []string    `json:"listeners"`
	TURN      *statusTURN `json:"turn,omitempty"`
	// Relayed bytes per second over the last few seconds.
	ToPeerRate   float64 `json:"to_peer_bytes_per_second"`
	ToClientRate float64 `json:"to_client_bytes_per_second"`
}

func (d *daemon) status() statusReport {
	draining, deadline := d.drainState()
	r := statusReport{
		Version:  version,
		Started:  d.started.UTC().Truncate(time.Second),
		Uptime:   time.Since(d.started).Round(time.Second).String(),
		Ready:    !draining,
		Draining: draining,
	}
	if draining {
		r.DrainLeft = max(0, time.Until(deadline)).Round(time.Second).String()
	}
	for _, ep := range d.endpoints {
		r.Listeners = append(r.Listeners, fmt.Sprintf("%s %s", ep.Network, ep.Addr))
	}
	if d.tr != nil {
		st := d.tr.server.Stats()
		r.TURN = &statusTURN{
			Allocations: st.Allocations, Permissions: st.Permissions, Channels: st.Channels,
			ToPeerPackets: st.ToPeerPackets, ToPeerBytes: st.ToPeerBytes,
			ToClientPackets: st.ToClientPackets, ToClientBytes: st.ToClientBytes,
			DroppedPolicy: st.DroppedPolicy, DroppedQuota: st.DroppedQuota, DroppedNoPermission: st.DroppedNoPermission,
		}
		r.ToPeerRate, r.ToClientRate = d.rates()
	}
	return r
}

// statusTURN is the TURN part of the status: the gauges and the relayed
// totals (the metrics endpoint has every counter).
type statusTURN struct {
	Allocations         int    `json:"allocations"`
	Permissions         int    `json:"permissions"`
	Channels            int    `json:"channels"`
	ToPeerPackets       uint64 `json:"to_peer_packets"`
	ToPeerBytes         uint64 `json:"to_peer_bytes"`
	ToClientPackets     uint64 `json:"to_client_packets"`
	ToClientBytes       uint64 `json:"to_client_bytes"`
	DroppedPolicy       uint64 `json:"dropped_policy"`
	DroppedQuota        uint64 `json:"dropped_quota"`
	DroppedNoPermission uint64 `json:"dropped_no_permission"`
}
