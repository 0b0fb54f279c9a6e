package turnloadcmd

// The report of a run: error tally and summary.

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/icebreaker-net/icebreaker/stun/stunclient"
)

// errorTally counts errors by stage and message. It is safe for
// concurrent use.
type errorTally struct {
	mu    sync.Mutex
	total uint64
	kinds []ErrorKind
}

// ErrorKind is one kind of error and how often it happened.
type ErrorKind struct {
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
			e.kinds = append(e.kinds, ErrorKind{Stage: "other", Error: "errors of further kinds"})
		}
		e.kinds[len(e.kinds)-1].Count++
		return
	}
	e.kinds = append(e.kinds, ErrorKind{Stage: stage, Error: msg, Count: 1})
}

func (e *errorTally) count() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.total
}

func (e *errorTally) list() []ErrorKind {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]ErrorKind{}, e.kinds...)
}

// Report is the summary of a run, printed as text or as JSON.
type Report struct {
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

	Sent          uint64      `json:"sent"`
	Received      uint64      `json:"received"`
	Lost          uint64      `json:"lost"`
	LossPercent   float64     `json:"loss_percent"`
	Reordered     uint64      `json:"reordered"`
	Foreign       uint64      `json:"foreign"` // datagrams that were not this run's
	SendSeconds   float64     `json:"send_s"`
	SentPerSecond float64     `json:"sent_per_second"`
	Latency       *Latency    `json:"latency,omitempty"`
	Relay         RelayStats  `json:"relay"`
	ErrorCount    uint64      `json:"error_count"`
	Errors        []ErrorKind `json:"errors"`
}

// Latency are latency percentiles in milliseconds: one-way between
// paired allocations, round trip through an echo peer.
type Latency struct {
	Kind string  `json:"kind"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

// RelayStats sums turnclient.Stats over the allocations.
type RelayStats struct {
	SentIndications uint64 `json:"sent_indications"`
	SentChannelData uint64 `json:"sent_channel_data"`
	RecvIndications uint64 `json:"recv_indications"`
	RecvChannelData uint64 `json:"recv_channel_data"`
	Dropped         uint64 `json:"dropped"` // the reader lagged
	Malformed       uint64 `json:"malformed"`
	Unexpected      uint64 `json:"unexpected"`
}

// report summarises the run. Call it after run has returned.
func (l *loadRun) report(interrupted bool) *Report {
	o := l.c
	rep := &Report{
		Server: fmt.Sprintf("%s (%s)", l.server, l.cfg.Transport),
		Mode:   o.Mode, Peer: "pairs", Size: o.Size, Rate: o.Rate, Duration: o.Duration.Seconds(),
		Interrupted: interrupted,
		Requested:   o.Allocations, Allocations: len(l.relays), AllocFailed: l.allocFailed.Load(),
		AllocSeconds: seconds(l.allocTime), ChannelsUnbound: l.unbound,
		Sent: l.sent.Load(), Received: l.received.Load(),
		Reordered: l.reordered.Load(), Foreign: l.foreign.Load(),
		SendSeconds: seconds(l.sendTime),
		ErrorCount:  l.errs.count(), Errors: l.errs.list(),
	}
	if o.Peer.IsValid() {
		rep.Peer = o.Peer.String()
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
		if o.Peer.IsValid() {
			kind = "round-trip"
		}
		rep.Latency = &Latency{Kind: kind, P50: ms(q[0]), P90: ms(q[1]), P99: ms(q[2]), Max: ms(time.Duration(l.lat.max.Load()))}
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

// WriteJSON writes r as one line of JSON.
func WriteJSON(w io.Writer, r *Report) error {
	return json.NewEncoder(w).Encode(r)
}

// Print writes r for people.
func Print(w io.Writer, r *Report) {
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

// ms is d in milliseconds with microsecond precision.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
