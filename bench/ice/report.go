package icebench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Agent names, as the AGENTS list of run.sh spells them.
const (
	AgentIcebreaker = "icebreaker"
	AgentPion       = "pion"
)

// Case is one NAT pairing of the lab with the path ICE is expected to take
// and the target of issue 7.
type Case struct {
	Name     string  // "direct", "relay" or "portmap"
	A, B     string  // NAT modes of side A (offer) and side B (answer), natlab names
	PortMap  bool    // miniupnpd runs on natA (PCP, NAT-PMP, UPnP IGD)
	Relay    bool    // the selected pair must use a relayed candidate; else it must not
	TargetMS float64 // icebreaker's median must not exceed this
	PionRef  float64 // pion/ice v4 as measured in issue 7 (coturn as STUN/TURN), ms
}

// MinRatio is the target for pion's median over icebreaker's, in every case.
const MinRatio = 2.0

// Cases are the pairings the benchmark knows, by name.
var Cases = map[string]Case{
	"direct": {Name: "direct", A: "eim", B: "eim", TargetMS: 200, PionRef: 604},
	"relay":  {Name: "relay", A: "random", B: "random", Relay: true, TargetMS: 1000, PionRef: 2013},
	// Issue 16: random×random with a port-mapping router on side A. The
	// mapping opens a direct path; pion/ice asks no router for one, so it
	// stays on the relay (run it with AGENTS=icebreaker).
	"portmap": {Name: "portmap", A: "random", B: "random", PortMap: true, TargetMS: 300},
}

// Run is the outcome of one attempt: a fresh offer agent in lanA and a fresh
// answer agent in lanB, given each other's token at the same moment.
type Run struct {
	Server, Case, Agent string
	Index               int  // 1-based within its kind (warm-up or measured)
	Warmup              bool // not counted
	OK                  bool // both sides connected on the expected kind of path and exchanged a ping
	OfferMS, AnswerMS   float64
	Path                string // the offer side's selected pair, "LOCALTYPE>REMOTETYPE"
	Pair                string // the same with addresses, "LOCALADDR>REMOTEADDR"
	Err                 string
}

// ConnectMS is the time until both sides were connected: the larger of the
// two connect_ms values, each measured by its agent from the moment it read
// the peer's token.
func (r Run) ConnectMS() float64 { return max(r.OfferMS, r.AnswerMS) }

// Line renders r as one key=value line for the raw section of the report.
func (r Run) Line() string {
	var b strings.Builder
	kind := "run"
	if r.Warmup {
		kind = "warmup"
	}
	fmt.Fprintf(&b, "server=%s case=%s agent=%s %s=%d ok=%t connect_ms=%.1f offer_ms=%.1f answer_ms=%.1f path=%s",
		r.Server, r.Case, r.Agent, kind, r.Index, r.OK, r.ConnectMS(), r.OfferMS, r.AnswerMS, orNA(r.Path))
	if r.Pair != "" {
		fmt.Fprintf(&b, " pair=%s", r.Pair)
	}
	if r.Err != "" {
		fmt.Fprintf(&b, " err=%s", strconv.Quote(r.Err))
	}
	return b.String()
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

// Stats summarises the measured (not warm-up) runs of one agent in one case.
// The times are over the successful runs only.
type Stats struct {
	N, OK                 int
	Median, P90, Min, Max float64 // ms; NaN when no run succeeded
	Path                  string  // the most frequent selected pair of the successful runs
	PathCount             int
}

// Summarize computes the Stats of runs, skipping warm-up runs.
func Summarize(runs []Run) Stats {
	s := Stats{Median: math.NaN(), P90: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	var ms []float64
	paths := map[string]int{}
	for _, r := range runs {
		if r.Warmup {
			continue
		}
		s.N++
		if !r.OK {
			continue
		}
		s.OK++
		ms = append(ms, r.ConnectMS())
		paths[r.Path]++
	}
	if len(ms) == 0 {
		return s
	}
	slices.Sort(ms)
	s.Median, s.P90 = Median(ms), Percentile(ms, 90)
	s.Min, s.Max = ms[0], ms[len(ms)-1]
	for p, n := range paths {
		if n > s.PathCount || (n == s.PathCount && p < s.Path) {
			s.Path, s.PathCount = p, n
		}
	}
	return s
}

// Median returns the median of sorted (the mean of the middle two for an
// even count), or NaN when it is empty.
func Median(sorted []float64) float64 {
	n := len(sorted)
	switch {
	case n == 0:
		return math.NaN()
	case n%2 == 1:
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// Percentile returns the nearest-rank p-th percentile of sorted (0 < p <=
// 100): the smallest value with at least p% of the values at or below it.
// The p90 of 20 values is the 18th smallest. It returns NaN when sorted is
// empty.
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	return sorted[min(max(rank, 1), n)-1]
}

// Ratio returns pion's median over icebreaker's, NaN when either is missing.
func Ratio(pion, ours Stats) float64 {
	if math.IsNaN(pion.Median) || math.IsNaN(ours.Median) || ours.Median == 0 {
		return math.NaN()
	}
	return pion.Median / ours.Median
}

func fmtMS(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	if v >= 1000 {
		return fmt.Sprintf("%.3f s", v/1000)
	}
	return fmt.Sprintf("%.1f ms", v)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// WriteReport writes the table of one server: a row per case and agent (in
// the order given), the ratio pion/icebreaker on pion's row and the targets.
func WriteReport(w io.Writer, server string, cases, agents []string, runs []Run) {
	fmt.Fprintf(w, "%-7s %-11s %10s %10s %10s %10s %6s %9s  %-18s %s\n",
		"case", "agent", "median", "p90", "min", "max", "ok/n", "pion/ours", "path (runs)", "target")
	var notes []string
	for _, cn := range cases {
		c := Cases[cn]
		stats := map[string]Stats{}
		for _, a := range agents {
			stats[a] = Summarize(slices.DeleteFunc(slices.Clone(runs), func(r Run) bool {
				return r.Server != server || r.Case != cn || r.Agent != a
			}))
		}
		ours, haveOurs := stats[AgentIcebreaker]
		for _, a := range agents {
			s := stats[a]
			ratio, target := "", ""
			switch a {
			case AgentIcebreaker:
				target = fmt.Sprintf("median <= %s: %s", fmtMS(c.TargetMS), verdict(s.Median <= c.TargetMS && s.OK == s.N && s.N > 0))
			case AgentPion:
				if r := Ratio(s, ours); haveOurs && !math.IsNaN(r) {
					ratio = fmt.Sprintf("%.2fx", r)
					target = fmt.Sprintf("pion/ours >= %.0fx: %s", MinRatio, verdict(r >= MinRatio))
				} else {
					ratio = "n/a"
				}
			}
			path := "n/a"
			if s.Path != "" {
				path = fmt.Sprintf("%s (%d)", s.Path, s.PathCount)
			}
			fmt.Fprintf(w, "%-7s %-11s %10s %10s %10s %10s %6s %9s  %-18s %s\n",
				cn, a, fmtMS(s.Median), fmtMS(s.P90), fmtMS(s.Min), fmtMS(s.Max),
				fmt.Sprintf("%d/%d", s.OK, s.N), ratio, path, target)
		}
		if p, ok := stats[AgentPion]; ok && haveOurs {
			notes = append(notes, fmt.Sprintf("%s: p90 pion/ours %s; issue 7 measured pion/ice v4 at %s with coturn",
				cn, fmtRatio(p.P90, ours.P90), fmtMS(c.PionRef)))
		}
	}
	for _, n := range notes {
		fmt.Fprintf(w, "  %s\n", n)
	}
}

func fmtRatio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}
