package peerbench

import (
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	runs := []Run{
		{Env: "lab", Config: IceRelay, OK: true, Size: 100e6, TTFB: 400 * time.Millisecond, Total: 1400 * time.Millisecond, Path: "relay"},
		{Env: "lab", Config: IceRelay, OK: true, Size: 100e6, TTFB: 600 * time.Millisecond, Total: 2600 * time.Millisecond, Path: "relay"},
		{Env: "lab", Config: IceRelay, OK: false, Err: "boom"},
		{Env: "loopback", Config: IceRelay, OK: true, Size: 1, TTFB: time.Second, Total: 2 * time.Second},
	}
	s := Summarize(runs, "lab", IceRelay)
	if s.N != 3 || s.OK != 2 {
		t.Fatalf("N, OK = %d, %d; want 3, 2", s.N, s.OK)
	}
	if s.TTFBMedian != 500*time.Millisecond {
		t.Errorf("median ttfb %v, want 500ms", s.TTFBMedian)
	}
	if s.BestMBps != 100 || s.BestMBpsAll != 100e6/1e6/1.4 {
		t.Errorf("best %v, %v; want 100, %v", s.BestMBps, s.BestMBpsAll, 100/1.4)
	}
	if len(s.Paths) != 1 || s.Paths[0] != "relay" {
		t.Errorf("paths %q", s.Paths)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []time.Duration
		want time.Duration
	}{
		{"none", nil, 0},
		{"one", []time.Duration{3}, 3},
		{"odd", []time.Duration{5, 1, 3}, 3},
		{"even", []time.Duration{4, 1, 2, 3}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := median(tc.in); got != tc.want {
				t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// TestWriteReport: the table, the ratios from the same runs and the
// verdicts.
func TestWriteReport(t *testing.T) {
	mk := func(config string, mbAfter float64, ttfb time.Duration, path string) Run {
		size := int64(256e6)
		data := time.Duration(float64(size) / 1e6 / mbAfter * float64(time.Second))
		return Run{Env: "lab", Config: config, OK: true, Size: size, TTFB: ttfb, Total: ttfb + data, Path: path}
	}
	runs := []Run{
		mk(IceDirect, 80, 500*time.Millisecond, "direct"),
		mk(IceRelay, 90, 2*time.Second, "relay"),
		mk(WormholeRelay, 20, time.Second, "relay"),
		mk(QUICCeiling, 100, 10*time.Millisecond, "udp"),
	}
	var b strings.Builder
	WriteReport(&b, "lab", Configs, runs)
	out := b.String()
	for _, want := range []string{
		"icebreaker-direct    1/1        0.500       80.0",
		"relayed: icebreaker/wormhole 4.50x after the first byte",
		"direct: icebreaker/quic-go ceiling 0.80x after the first byte; target >= 0.8x: met",
		"lab ttfb direct 0.500 s; target <= 1.0 s: met",
		"lab ttfb relayed 2.000 s; target <= 1.5 s: MISSED",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, WormholeDirect) {
		t.Errorf("a configuration without runs is listed:\n%s", out)
	}
}
