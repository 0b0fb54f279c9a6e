package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/bench/turn/internal/ibserver"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

func TestParseArgs(t *testing.T) {
	ok := []string{"-server", "127.0.0.1:3478", "-user", "u:p"}
	for _, tc := range []struct {
		name  string
		extra []string
		good  bool
	}{
		{"defaults", nil, true},
		{"peer mode", []string{"-mode", "peer"}, true},
		{"unknown mode", []string{"-mode", "mesh"}, false},
		{"many mode", []string{"-mode", "many", "-allocs", "200", "-rates", "250,500,1000"}, true},
		{"no allocations", []string{"-mode", "many", "-allocs", "0"}, false},
		{"too many allocations", []string{"-mode", "many", "-allocs", "2001"}, false},
		{"many over the total cap", []string{"-mode", "many", "-allocs", "2000", "-rates", "1001"}, false},
		{"remote server", []string{"-server", "198.51.100.7:3478"}, false},
		{"host name", []string{"-server", "localhost:3478"}, false},
		{"no user", []string{"-user", ""}, false},
		{"rate over cap", []string{"-rates", "2000001"}, false},
		{"zero rate", []string{"-rates", "0"}, false},
		{"bad rate", []string{"-rates", "80000,fast"}, false},
		{"too many rates", []string{"-rates", "1,2,3,4,5,6,7,8,9,10,11"}, false},
		{"duration over cap", []string{"-duration", "31s"}, false},
		{"warmup over cap", []string{"-warmup", "6s"}, false},
		{"tiny payload", []string{"-size", "8"}, false},
		{"huge payload", []string{"-size", "9000"}, false},
		{"channel out of range", []string{"-channel", "0x5000"}, false},
		{"channel too big", []string{"-channel", "0x14000"}, false},
		{"gso", []string{"-gso"}, gsoSupported},
		{"gso batch too big", []string{"-gso", "-batch", "100"}, false},
		{"gso datagram too big", []string{"-gso", "-size", "1400", "-batch", "64"}, false},
		{"stray argument", []string{"x"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseArgs(append(append([]string{}, ok...), tc.extra...), io.Discard)
			if (err == nil) != tc.good {
				t.Errorf("err = %v, want success %v", err, tc.good)
			}
		})
	}
}

// TestRun relays a short, slow run through an in-process icebreaker in
// both modes and checks the accounting: no more packets received than
// counted, none stray.
func TestRun(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the load tools need Linux (epoll, sendmmsg)")
	}
	for _, mode := range []string{"pair", "peer", "many"} {
		t.Run(mode, func(t *testing.T) {
			before := runtime.NumGoroutine()
			s, err := ibserver.Start(ibserver.Config{
				Listen:     netip.MustParseAddrPort("127.0.0.1:0"),
				Users:      map[string]string{"u": "p"},
				AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
				UDPSockets: 1,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var out, errs strings.Builder
			args := []string{
				"-server", s.Addr().String(), "-user", "u:p", "-mode", mode,
				"-rates", "1000,2000", "-duration", "200ms", "-warmup", "50ms", "-drain", "100ms", "-label", "test",
			}
			if gsoSupported && mode == "peer" {
				args = append(args, "-gso")
			}
			if mode == "many" {
				args = append(args, "-allocs", "5", "-rates", "100,200")
			}
			code := runMain(context.Background(), args, &out, &errs)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("want one line per rate, got %q", out.String())
			}
			wants := []string{"offered=1000 ", "offered=2000 "}
			if mode == "many" {
				wants = []string{"offered=100 ", "offered=200 "}
			}
			for i, want := range wants {
				l := lines[i]
				if !strings.Contains(l, "label=test mode="+mode) || !strings.Contains(l, want) || !strings.Contains(l, " stray=0 ") {
					t.Errorf("line %q", l)
				}
				if strings.Contains(l, " received=0 ") {
					t.Errorf("nothing received: %q", l)
				}
			}
			if err := s.Close(); err != nil {
				t.Error(err)
			}
			testutil.CheckGoroutines(t, before)
		})
	}
}

func TestRunNoServer(t *testing.T) {
	// A port that was just free: nothing answers there.
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	var out, errs strings.Builder
	code := runMain(context.Background(), []string{"-server", addr, "-user", "u:p"}, &out, &errs)
	if code != 1 || !strings.Contains(errs.String(), "setup") {
		t.Errorf("exit %d, stderr %q; want a setup failure", code, errs.String())
	}
}
