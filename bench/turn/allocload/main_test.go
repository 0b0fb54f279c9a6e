package main

import (
	"context"
	"io"
	"net/netip"
	"os"
	"runtime"
	"strconv"
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
		{"mem", []string{"-mode", "mem", "-server-pid", "1"}, true},
		{"mem without pid", []string{"-mode", "mem"}, false},
		{"unknown mode", []string{"-mode", "fast"}, false},
		{"remote server", []string{"-server", "198.51.100.7:3478"}, false},
		{"remote client", []string{"-client-ip", "10.0.0.1"}, false},
		{"mixed families", []string{"-client-ip", "::1"}, false},
		{"no user", []string{"-user", "u"}, false},
		{"too many sockets", []string{"-sockets", "20001"}, false},
		{"no inflight", []string{"-inflight", "0"}, false},
		{"duration over cap", []string{"-duration", "61s"}, false},
		{"settle over cap", []string{"-settle", "2m"}, false},
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

func TestCycleIP(t *testing.T) {
	a, err := cycleIP(netip.MustParseAddr("127.0.0.2"), 3)
	if err != nil || a != netip.MustParseAddr("127.0.0.5") {
		t.Errorf("cycleIP(127.0.0.2, 3) = %v, %v", a, err)
	}
	if _, err := cycleIP(netip.MustParseAddr("127.255.255.255"), 1); err == nil {
		t.Error("cycleIP left 127.0.0.0/8")
	}
	if a, _ := cycleIP(netip.MustParseAddr("::1"), 5); a != netip.MustParseAddr("::1") {
		t.Errorf("IPv6 cycle IP %v, want ::1", a)
	}
}

// TestModes runs both modes briefly against an in-process icebreaker. The
// rate run's pool is small, so it goes through several allocate and delete
// cycles.
func TestModes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the load tools need Linux (epoll, sendmmsg)")
	}
	before := runtime.NumGoroutine()
	s, err := ibserver.Start(ibserver.Config{
		Listen: netip.MustParseAddrPort("127.0.0.1:0"), Users: map[string]string{"u": "p"}, UDPSockets: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-mode", "rate", "-sockets", "20", "-inflight", "4", "-duration", "300ms", "-server-pid", "1"},
			[]string{"mode=rate ", " failed=0 ", " timeouts=0 "}},
		{[]string{"-mode", "mem", "-sockets", "50", "-settle", "0", "-server-pid", itoa(os.Getpid())},
			[]string{"mode=mem allocations=50 ", " deleted=50 not_deleted=0 "}},
	} {
		var out, errs strings.Builder
		args := append([]string{"-server", s.Addr().String(), "-user", "u:p", "-label", "t"}, tc.args...)
		if code := runMain(context.Background(), args, &out, &errs); code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errs.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: output %q lacks %q", tc.args, out.String(), w)
			}
		}
	}
	if st := s.Stats(); st.Allocations != 0 {
		t.Errorf("server still holds %d allocations", st.Allocations)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	testutil.CheckGoroutines(t, before)
}

func itoa(n int) string { return strconv.Itoa(n) }
