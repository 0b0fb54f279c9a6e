package turnload

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/bench/internal/loopback"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

func TestEngine(t *testing.T) {
	before := runtime.NumGoroutine()
	s := startServer(t)
	defer s.Close()
	cfg := EngineConfig{
		Server:   s.Addr(),
		ClientIP: netip.MustParseAddr("127.0.0.2"),
		Creds:    Creds{Username: "u", Password: "p"},
	}
	e, err := NewEngine(cfg, 40)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ids := make([]int, e.Len())
	for i := range ids {
		ids[i] = i
	}
	deadline := time.Now().Add(time.Minute)
	check := func(what string, r RunResult, want int) {
		t.Helper()
		if r.Done != want || r.Failed != 0 || r.TimedOut != 0 || r.Unstarted != 0 {
			t.Fatalf("%s: %+v, want %d done and nothing else", what, r, want)
		}
	}
	r := e.Run(ids, OpAllocate, 8, deadline)
	check("allocate", r, len(ids))
	if r.Challenges != len(ids) {
		t.Errorf("%d challenges answered, want one per allocation (%d)", r.Challenges, len(ids))
	}
	if got := len(e.Allocated(nil)); got != len(ids) {
		t.Errorf("%d sockets hold an allocation, want %d", got, len(ids))
	}
	for _, i := range ids {
		if a, ok := e.Relayed(i); !ok || loopback.Check(a) != nil {
			t.Fatalf("socket %d: relayed %v, %v", i, a, ok)
		}
	}
	// Allocating again on the same 5-tuples fails with 437.
	r = e.Run(ids[:4], OpAllocate, 8, deadline)
	if r.Failed != 4 || r.Codes[437] != 4 {
		t.Errorf("second Allocate on the same sockets: %+v, want four 437s", r)
	}
	check("delete", e.Run(e.Allocated(nil), OpDelete, 16, deadline), len(ids))
	if got := len(e.Allocated(nil)); got != 0 {
		t.Errorf("%d allocations left after deleting", got)
	}
	// Fresh sockets on another IP allocate again; an operation not
	// started before its time is counted, not run.
	if err := e.Reopen(netip.MustParseAddr("127.0.0.3")); err != nil {
		t.Fatal(err)
	}
	check("allocate after Reopen", e.Run(ids[:10], OpAllocate, 4, deadline), 10)
	if r := e.Run(ids[10:], OpAllocate, 4, time.Now().Add(-time.Second)); r.Unstarted != len(ids)-10 || r.Done != 0 {
		t.Errorf("run past its start time: %+v", r)
	}
	check("delete after Reopen", e.Run(e.Allocated(nil), OpDelete, 16, deadline), 10)
	if st := s.Stats(); st.Allocations != 0 {
		t.Errorf("server still holds %d allocations", st.Allocations)
	}
	e.Close()
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	testutil.CheckGoroutines(t, before)
}

func TestEngineRefusesRemote(t *testing.T) {
	for _, cfg := range []EngineConfig{
		{Server: netip.MustParseAddrPort("192.0.2.1:3478"), ClientIP: netip.MustParseAddr("127.0.0.1")},
		{Server: netip.MustParseAddrPort("127.0.0.1:3478"), ClientIP: netip.MustParseAddr("192.0.2.1")},
		{Server: netip.MustParseAddrPort("127.0.0.1:3478"), ClientIP: netip.MustParseAddr("::1")},
	} {
		if e, err := NewEngine(cfg, 1); err == nil {
			e.Close()
			t.Errorf("NewEngine(%v -> %v) succeeded", cfg.ClientIP, cfg.Server)
		}
	}
}

func TestMeter(t *testing.T) {
	m := Meter{PID: 1}
	m.Start()
	m.Stop()
	m.Stop() // no interval running: nothing added
	u := m.Usage()
	if u.Seconds < 0 || u.Self < 0 || u.Server < 0 || u.Other < 0 {
		t.Errorf("negative usage %+v", u)
	}
	if (Usage{}).Cores(1) != 0 {
		t.Error("Cores of an empty interval is not 0")
	}
}
