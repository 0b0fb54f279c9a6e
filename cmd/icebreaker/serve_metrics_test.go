package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/metrics"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn/turnserver"
	"github.com/icebreaker-net/icebreaker/wormhole/mailbox"
	"github.com/icebreaker-net/icebreaker/wormhole/transitrelay"
)

var metricsLine = regexp.MustCompile(`(?m)^  metrics http://(\S+)/metrics$`)

// startServeMetrics starts `icebreaker serve args... --metrics
// 127.0.0.1:PORT` on a free port, with a fresh port if another process
// took it meanwhile, and returns the run and the printed metrics address.
func startServeMetrics(t *testing.T, args ...string) (*serveRun, netip.AddrPort) {
	t.Helper()
	for range 5 {
		want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(testutil.FreePort(t)))
		r := startServe(t, append(args, "--metrics", want.String())...)
		deadline := time.After(serveTimeout)
		for {
			if m := metricsLine.FindStringSubmatch(r.out.String()); m != nil {
				if m[1] != want.String() {
					t.Fatalf("metrics listening on %s, want %s", m[1], want)
				}
				return r, want
			}
			select {
			case <-r.out.changed:
				continue
			case r.code = <-r.done:
				r.exited = true
			case <-deadline:
				t.Fatalf("serve did not print its metrics line within %v\nstdout:\n%s\nstderr:\n%s", serveTimeout, r.out, r.errb)
			}
			break
		}
		if !strings.Contains(r.errb.String(), "address already in use") {
			t.Fatalf("serve exited with %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errb)
		}
	}
	t.Fatal("no free port for the metrics endpoint after 5 tries")
	return nil, netip.AddrPort{}
}

// scrape gets url with a client that keeps no connection open, and returns
// the status, the content type and the body.
func scrape(t *testing.T, method, url string) (int, string, string) {
	t.Helper()
	c := &http.Client{Timeout: serveTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header.Get("Content-Type"), string(body)
}

// parseSamples reads the samples of a scrape: `name{labels}` (as written)
// to value; and the TYPE of each family.
func parseSamples(t *testing.T, body string) (samples map[string]float64, types map[string]string) {
	t.Helper()
	samples, types = map[string]float64{}, map[string]string{}
	for line := range strings.Lines(body) {
		line = strings.TrimSuffix(line, "\n")
		if name, kind, ok := strings.Cut(strings.TrimPrefix(line, "# TYPE "), " "); ok && strings.HasPrefix(line, "# TYPE ") {
			types[name] = kind
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("sample line %q has no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples, types
}

func TestServeMetrics(t *testing.T) {
	checkNoLeak(t, "serve --metrics", func() {
		r, maddr := startServeMetrics(t, "--listen", "127.0.0.1", "--port", "0")
		udp := r.endpoint(t, "udp")
		out := r.out.String()
		if strings.Index(out, "  metrics ") < strings.Index(out, "  udp ") {
			t.Errorf("the metrics line comes before the listeners:\n%s", out)
		}

		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		client, err := stunclient.New(conn, stunclient.Config{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), serveTimeout)
		_, err = client.Binding(ctx, udp)
		cancel()
		client.Close()
		if err != nil {
			t.Fatalf("Binding: %v", err)
		}

		base := "http://" + maddr.String()
		code, ctype, body := scrape(t, http.MethodGet, base+"/metrics")
		if code != http.StatusOK || ctype != "text/plain; version=0.0.4; charset=utf-8" {
			t.Fatalf("GET /metrics: %d, Content-Type %q\n%s", code, ctype, body)
		}
		samples, types := parseSamples(t, body)
		if v := samples["icebreaker_stun_requests_total"]; v < 1 {
			t.Errorf("icebreaker_stun_requests_total = %v after a Binding request, want >= 1", v)
		}
		if v := samples[`icebreaker_stun_responses_total{result="success"}`]; v < 1 {
			t.Errorf(`icebreaker_stun_responses_total{result="success"} = %v, want >= 1`, v)
		}
		if v, ok := samples[`icebreaker_build_info{version="`+version+`"}`]; !ok || v != 1 {
			t.Errorf("no build_info of version %q equal to 1:\n%s", version, body)
		}
		for _, name := range []string{"icebreaker_turn_allocations", "icebreaker_turn_permissions", "icebreaker_turn_channels",
			"icebreaker_turn_reservations", "icebreaker_stun_tcp_connections"} {
			if v, ok := samples[name]; !ok || v != 0 || types[name] != "gauge" {
				t.Errorf("gauge %s: %v, present %v, type %q; want a gauge at 0", name, v, ok, types[name])
			}
		}
		for _, key := range []string{
			`icebreaker_turn_relayed_packets_total{direction="to_peer"}`, `icebreaker_turn_relayed_packets_total{direction="to_client"}`,
			`icebreaker_turn_relayed_bytes_total{direction="to_peer"}`, `icebreaker_turn_relayed_bytes_total{direction="to_client"}`,
			`icebreaker_turn_dropped_packets_total{reason="policy"}`, `icebreaker_turn_dropped_packets_total{reason="quota"}`,
			`icebreaker_turn_dropped_packets_total{reason="no_permission"}`, `icebreaker_turn_dropped_packets_total{reason="no_allocation"}`,
			`icebreaker_turn_dropped_packets_total{reason="malformed"}`,
		} {
			if _, ok := samples[key]; !ok {
				t.Errorf("no sample %s", key)
			}
		}
		for name, kind := range types {
			if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
				continue // the standard runtime series (serve_runtime_metrics.go)
			}
			if !strings.HasPrefix(name, "icebreaker_") || (kind == "counter") != strings.HasSuffix(name, "_total") {
				t.Errorf("%s %s: want the icebreaker_ prefix, and _total on counters only", kind, name)
			}
		}

		for _, path := range []string{"/", "/metrics/", "/debug/pprof/", "/metricsx"} {
			if code, _, _ := scrape(t, http.MethodGet, base+path); code != http.StatusNotFound {
				t.Errorf("GET %s: %d, want 404", path, code)
			}
		}
		if code, _, _ := scrape(t, http.MethodPost, base+"/metrics"); code != http.StatusMethodNotAllowed {
			t.Errorf("POST /metrics: %d, want 405", code)
		}

		if code := r.stop(t); code != 0 {
			t.Fatalf("exit status %d, want 0; stderr:\n%s", code, r.errb)
		}
		if c, err := net.DialTimeout("tcp", maddr.String(), time.Second); err == nil {
			c.Close()
			t.Errorf("the metrics port %v still accepts connections after serve returned", maddr)
		}
	})
}

// With TURN off, the endpoint serves the STUN metrics only.
func TestServeMetricsNoTURN(t *testing.T) {
	r, maddr := startServeMetrics(t, "--listen", "127.0.0.1", "--port", "0", "--no-turn")
	_, _, body := scrape(t, http.MethodGet, "http://"+maddr.String()+"/metrics")
	samples, _ := parseSamples(t, body)
	if _, ok := samples["icebreaker_stun_requests_total"]; !ok {
		t.Errorf("no STUN metrics:\n%s", body)
	}
	if strings.Contains(body, "icebreaker_turn_") {
		t.Errorf("TURN metrics with TURN off:\n%s", body)
	}
	r.stop(t)
}

// Off by default: no metrics line, so no endpoint.
func TestServeMetricsOff(t *testing.T) {
	r := startServe(t, "--listen", "127.0.0.1", "--port", "0")
	r.waitFor(t, regexp.MustCompile(`(?m)^TURN: realm`)) // printed after every listener line
	if strings.Contains(r.out.String(), "metrics") {
		t.Errorf("a metrics endpoint without --metrics:\n%s", r.out)
	}
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
}

func TestServeMetricsErrors(t *testing.T) {
	busy, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	inUse := busy.Addr().String()
	tests := []struct {
		name string
		env  string
		args []string
		code int
		want string
	}{
		{"not an address", "", []string{"--metrics", "localhost:9641"}, 2,
			`icebreaker serve: usage error: --metrics: "localhost:9641" is not IP:PORT (for example 127.0.0.1:9641)`},
		{"no port", "", []string{"--metrics", "127.0.0.1"}, 2, `icebreaker serve: usage error: --metrics: "127.0.0.1" has no port`},
		{"port 0", "", []string{"--metrics", "127.0.0.1:0"}, 2, "icebreaker serve: usage error: --metrics: port 0 would be a different free port at every start"},
		{"on a listener", "", []string{"--listen", "127.0.0.1:3478", "--metrics", "127.0.0.1:3478"}, 2,
			"icebreaker serve: usage error: --metrics: 127.0.0.1:3478 takes the TCP port of listen[0]"},
		{"bad environment", "127.0.0.1:0", []string{"--port", "0"}, 1,
			"icebreaker serve: ICEBREAKER_METRICS_LISTEN: metrics.listen: port 0"},
		{"in use", "", []string{"--listen", "127.0.0.1", "--port", "0", "--metrics", inUse}, 1,
			"icebreaker serve: metrics.listen: listen tcp " + inUse + ": address already in use (another server? choose another address with --metrics)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("ICEBREAKER_METRICS_LISTEN", tt.env)
			}
			code, out, stderr := runServeOnce(t, tt.args...)
			if code != tt.code || !strings.HasPrefix(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit status %d, stderr:\n%s\nwant %d and one line starting %q", code, stderr, tt.code, tt.want)
			}
			if strings.Contains(out, "listening") {
				t.Errorf("printed the listening lines before failing:\n%s", out)
			}
		})
	}
}

// fillStats sets every integer field of the structs (pointers) to a value
// of its own and returns the field of each value; nested structs are
// skipped when skipStructs, else an error.
func fillStats(t *testing.T, skipStructs bool, structs ...any) map[float64]string {
	t.Helper()
	next := 1000
	want := map[float64]string{}
	for _, p := range structs {
		v := reflect.ValueOf(p).Elem()
		for i := range v.NumField() {
			f := v.Field(i)
			switch f.Kind() {
			case reflect.Int, reflect.Int64:
				f.SetInt(int64(next))
			case reflect.Uint64:
				f.SetUint(uint64(next))
			case reflect.Struct:
				if skipStructs {
					continue
				}
				fallthrough
			default:
				t.Fatalf("%s.%s is a %v: teach this test and the metrics about it", v.Type(), v.Type().Field(i).Name, f.Kind())
			}
			want[float64(next)] = v.Type().String() + "." + v.Type().Field(i).Name
			next++
		}
	}
	return want
}

// checkEachOnce checks that ms encode and that every value of want is in
// exactly one sample, and no other value is.
func checkEachOnce(t *testing.T, ms []metrics.Metric, want map[float64]string) {
	t.Helper()
	if _, err := metrics.Append(nil, ms); err != nil {
		t.Fatal(err)
	}
	found := map[float64]int{}
	for _, m := range ms {
		for _, s := range m.Samples {
			if m.Name == "icebreaker_build_info" {
				continue
			}
			if _, ok := want[s.Value]; !ok {
				t.Errorf("%s %v = %v, which is no field", m.Name, s.Labels, s.Value)
			}
			found[s.Value]++
		}
	}
	for v, field := range want {
		if found[v] != 1 {
			t.Errorf("%s is in %d samples, want 1", field, found[v])
		}
	}
}

// Every field of both Stats structs is exported, each once: fill each
// field with its own value and find each value in exactly one sample.
func TestStatsMetricsComplete(t *testing.T) {
	var st stunserver.Stats
	var ts turnserver.Stats
	want := fillStats(t, false, &st, &ts)
	checkEachOnce(t, statsMetrics(st, &ts), want)
	for _, m := range statsMetrics(st, nil) {
		if strings.HasPrefix(m.Name, "icebreaker_turn_") {
			t.Errorf("%s without a TURN server", m.Name)
		}
	}
}

// Every counter and gauge of the rendezvous' Stats is exported, each once
// (the limiter's own view, Limiter, repeats what the counters say).
func TestRendezvousMetricsComplete(t *testing.T) {
	var ms mailbox.Stats
	var rs transitrelay.Stats
	want := fillStats(t, true, &ms, &rs)
	checkEachOnce(t, rendezvousMetrics(ms, &rs), want)
	for _, m := range rendezvousMetrics(ms, nil) {
		if strings.HasPrefix(m.Name, "icebreaker_transit_") {
			t.Errorf("%s without a transit relay", m.Name)
		}
	}
}
