package main

import (
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestServeRuntimeMetrics: the scrape parses with Prometheus's own parser
// and has our series, the process_* and go_* series dashboards expect, and
// /healthz and /readyz beside /metrics.
func TestServeRuntimeMetrics(t *testing.T) {
	_, maddr := startServeMetrics(t, "--listen", "127.0.0.1", "--port", "0", "--admin", "none")
	code, _, body := scrape(t, "GET", "http://"+maddr.String()+"/metrics")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("expfmt cannot parse the scrape: %v\n%s", err, body)
	}
	for _, name := range []string{"icebreaker_stun_requests_total", "icebreaker_turn_allocations",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "go_goroutines", "go_memstats_alloc_bytes"} {
		if _, ok := families[name]; !ok {
			t.Errorf("scrape lacks %s", name)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _, body := scrape(t, "GET", "http://"+maddr.String()+path); code != 200 || body == "" {
			t.Errorf("%s: %d %q", path, code, body)
		}
	}
}
