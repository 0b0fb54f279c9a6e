package icebench

import (
	"math"
	"strings"
	"testing"
)

func TestMedianPercentile(t *testing.T) {
	twenty := make([]float64, 20)
	for i := range twenty {
		twenty[i] = float64(i + 1)
	}
	tests := []struct {
		name     string
		sorted   []float64
		median   float64
		p90      float64
		wantsNaN bool
	}{
		{name: "empty", wantsNaN: true},
		{name: "one", sorted: []float64{7}, median: 7, p90: 7},
		{name: "odd", sorted: []float64{1, 2, 10}, median: 2, p90: 10},
		{name: "even", sorted: []float64{1, 2, 3, 10}, median: 2.5, p90: 10},
		// Nearest rank: the p90 of 20 values is the 18th.
		{name: "twenty", sorted: twenty, median: 10.5, p90: 18},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, p := Median(tt.sorted), Percentile(tt.sorted, 90)
			if tt.wantsNaN {
				if !math.IsNaN(m) || !math.IsNaN(p) {
					t.Fatalf("median %v, p90 %v; want NaN", m, p)
				}
				return
			}
			if m != tt.median || p != tt.p90 {
				t.Errorf("median %v, p90 %v; want %v, %v", m, p, tt.median, tt.p90)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	runs := []Run{
		{Warmup: true, OK: true, OfferMS: 900, AnswerMS: 900, Path: "host>host"},
		{OK: true, OfferMS: 100, AnswerMS: 120, Path: "srflx>srflx"},
		{OK: true, OfferMS: 300, AnswerMS: 200, Path: "srflx>srflx"},
		{OK: true, OfferMS: 200, AnswerMS: 50, Path: "srflx>prflx"},
		{OK: false, Err: "ICE failed"},
	}
	s := Summarize(runs)
	if s.N != 4 || s.OK != 3 {
		t.Errorf("n %d ok %d, want 4 and 3 (the warm-up run is not counted)", s.N, s.OK)
	}
	// Each run counts with the later side: 120, 300, 200.
	if s.Median != 200 || s.Min != 120 || s.Max != 300 || s.P90 != 300 {
		t.Errorf("median/min/max/p90 = %v/%v/%v/%v, want 200/120/300/300", s.Median, s.Min, s.Max, s.P90)
	}
	if s.Path != "srflx>srflx" || s.PathCount != 2 {
		t.Errorf("path %q (%d), want srflx>srflx (2)", s.Path, s.PathCount)
	}
	if none := Summarize([]Run{{Err: "x"}}); none.OK != 0 || !math.IsNaN(none.Median) {
		t.Errorf("no successful run: %+v, want OK 0 and NaN times", none)
	}
}

func TestWriteReport(t *testing.T) {
	var runs []Run
	for i, ms := range []float64{100, 110, 120} {
		runs = append(runs,
			Run{Server: "icebreaker", Case: "direct", Agent: AgentIcebreaker, Index: i + 1, OK: true, OfferMS: ms, AnswerMS: ms, Path: "srflx>srflx"},
			Run{Server: "icebreaker", Case: "direct", Agent: AgentPion, Index: i + 1, OK: true, OfferMS: 5 * ms, AnswerMS: 5 * ms, Path: "host>prflx"},
			// Another server's runs must not leak into this table.
			Run{Server: "coturn", Case: "direct", Agent: AgentIcebreaker, Index: i + 1, OK: true, OfferMS: 9999, AnswerMS: 9999})
	}
	var b strings.Builder
	WriteReport(&b, "icebreaker", []string{"direct"}, []string{AgentIcebreaker, AgentPion}, runs)
	out := b.String()
	for _, want := range []string{
		"110.0 ms", "550.0 ms", "5.00x", "median <= 200.0 ms: met", "pion/ours >= 2x: met", "3/3", "srflx>srflx (3)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "9.999 s") {
		t.Errorf("report mixes in another server's runs:\n%s", out)
	}
}
