package peerbench

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Configurations, as the CONFIGS list of run.sh spells them.
const (
	IceDirect      = "icebreaker-direct" // send/receive, the path ICE picks
	IceRelay       = "icebreaker-relay"  // the same with --relay-only on the sender
	WormholeRelay  = "wormhole-relay"    // Python wormhole, --no-listen on both sides
	WormholeDirect = "wormhole-direct"   // Python wormhole with its direct hints
	QUICCeiling    = "quic-ceiling"      // quic-go on a plain UDP socket
)

// Configs lists every configuration in report order.
var Configs = []string{IceDirect, IceRelay, WormholeRelay, WormholeDirect, QUICCeiling}

// WormholeRelayRef is magic-wormhole through the reference transit relay as
// issue 12 measured it (64 MB on loopback, set-up included), MB/s.
const WormholeRelayRef = 26.4

// Targets of issue 12.
const (
	RelayVsWormhole  = 3.0                     // icebreaker relayed over wormhole relayed
	DirectVsCeiling  = 0.8                     // icebreaker direct over the quic-go ceiling
	LabTTFBDirectMax = 1 * time.Second         // time to first byte, direct, in the lab
	LabTTFBRelayMax  = 1500 * time.Millisecond // time to first byte, relayed, in the lab
)

// Run is one transfer of one configuration in one environment.
type Run struct {
	Env, Config string
	Round       int
	OK          bool
	Size        int64
	TTFB        time.Duration // both sides have the code -> first byte on the receiver's disk
	Total       time.Duration // both sides have the code -> the whole file on the receiver's disk
	Path        string        // what the receiver reports: "direct host>host", "relay", ...
	Load        string        // /proc/loadavg (1, 5, 15 min) when the run started
	Err         string
}

// Data is the time from the first byte to the last.
func (r Run) Data() time.Duration { return r.Total - r.TTFB }

// MBps is the throughput after the first byte, in MB/s (10^6 bytes).
func (r Run) MBps() float64 { return mbps(r.Size, r.Data()) }

// MBpsTotal is the throughput with the set-up included (from having the
// code), as issue 12 measured magic-wormhole.
func (r Run) MBpsTotal() float64 { return mbps(r.Size, r.Total) }

func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}

// Line renders r as one key=value line for the raw part of the report.
func (r Run) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "env=%s config=%s round=%d ok=%t bytes=%d", r.Env, r.Config, r.Round, r.OK, r.Size)
	if r.OK {
		fmt.Fprintf(&b, " ttfb_ms=%.0f total_ms=%.0f mbps=%.1f mbps_total=%.1f path=%q",
			ms(r.TTFB), ms(r.Total), r.MBps(), r.MBpsTotal(), r.Path)
	}
	fmt.Fprintf(&b, " load=%q", r.Load)
	if r.Err != "" {
		fmt.Fprintf(&b, " err=%s", strconv.Quote(r.Err))
	}
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Summary condenses the ok runs of one configuration in one environment.
type Summary struct {
	N, OK       int
	TTFBMedian  time.Duration
	BestMBps    float64 // the best run's MB/s after the first byte
	BestMBpsAll float64 // the best run's MB/s with the set-up
	Paths       []string
}

// Summarize returns the summary of the runs of env and config.
func Summarize(runs []Run, env, config string) Summary {
	var s Summary
	var ttfb []time.Duration
	for _, r := range runs {
		if r.Env != env || r.Config != config {
			continue
		}
		s.N++
		if !r.OK {
			continue
		}
		s.OK++
		ttfb = append(ttfb, r.TTFB)
		s.BestMBps = max(s.BestMBps, r.MBps())
		s.BestMBpsAll = max(s.BestMBpsAll, r.MBpsTotal())
		if !slices.Contains(s.Paths, r.Path) {
			s.Paths = append(s.Paths, r.Path)
		}
	}
	s.TTFBMedian = median(ttfb)
	return s
}

// median returns the median of d (the mean of the middle two for an even
// count), or 0 for none.
func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	m := len(d) / 2
	if len(d)%2 == 1 {
		return d[m]
	}
	return (d[m-1] + d[m]) / 2
}

// ratio formats a/b as "1.23x", or "n/a" when either is missing.
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// WriteReport writes the table of one environment, its ratios and the
// targets that apply to it.
func WriteReport(w io.Writer, env string, configs []string, runs []Run) {
	fmt.Fprintf(w, "%-18s %6s %11s %10s %13s  %s\n", "config", "ok/n", "ttfb_med_s", "best_MB/s", "best_MB/s_all", "path (receiver)")
	sum := map[string]Summary{}
	for _, c := range configs {
		s := Summarize(runs, env, c)
		sum[c] = s
		if s.N == 0 {
			continue
		}
		ttfb, best, all := "n/a", "n/a", "n/a"
		if s.OK > 0 {
			ttfb = fmt.Sprintf("%.3f", s.TTFBMedian.Seconds())
			best = fmt.Sprintf("%.1f", s.BestMBps)
			all = fmt.Sprintf("%.1f", s.BestMBpsAll)
		}
		fmt.Fprintf(w, "%-18s %3d/%-2d %11s %10s %13s  %s\n", c, s.OK, s.N, ttfb, best, all, strings.Join(s.Paths, ", "))
	}
	fmt.Fprintln(w, "ttfb: from both sides having the code to the first byte on the receiver's disk (median);")
	fmt.Fprintln(w, "MB/s: 10^6 bytes/s after the first byte (best run); _all: with the set-up, from having the code (best run)")

	ir, wr, id, qc := sum[IceRelay], sum[WormholeRelay], sum[IceDirect], sum[QUICCeiling]
	if ir.OK > 0 && wr.OK > 0 {
		fmt.Fprintf(w, "relayed: icebreaker/wormhole %s after the first byte, %s with the set-up; target >= %.0fx: %s\n",
			ratio(ir.BestMBps, wr.BestMBps), ratio(ir.BestMBpsAll, wr.BestMBpsAll), RelayVsWormhole,
			verdict(ir.BestMBpsAll >= RelayVsWormhole*wr.BestMBpsAll))
	}
	if ir.OK > 0 && env == "loopback" {
		fmt.Fprintf(w, "relayed: icebreaker with the set-up against issue 12's wormhole figure (%.1f MB/s, 64 MB): %s\n",
			WormholeRelayRef, ratio(ir.BestMBpsAll, WormholeRelayRef))
	}
	if id.OK > 0 && qc.OK > 0 {
		fmt.Fprintf(w, "direct: icebreaker/quic-go ceiling %s after the first byte; target >= %.1fx: %s\n",
			ratio(id.BestMBps, qc.BestMBps), DirectVsCeiling, verdict(id.BestMBps >= DirectVsCeiling*qc.BestMBps))
	}
	if env == "lab" {
		if id.OK > 0 {
			fmt.Fprintf(w, "lab ttfb direct %.3f s; target <= %.1f s: %s\n", id.TTFBMedian.Seconds(), LabTTFBDirectMax.Seconds(),
				verdict(id.OK == id.N && id.TTFBMedian <= LabTTFBDirectMax))
		}
		if ir.OK > 0 {
			fmt.Fprintf(w, "lab ttfb relayed %.3f s; target <= %.1f s: %s\n", ir.TTFBMedian.Seconds(), LabTTFBRelayMax.Seconds(),
				verdict(ir.OK == ir.N && ir.TTFBMedian <= LabTTFBRelayMax))
		}
	}
}
