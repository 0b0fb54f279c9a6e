package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

func request(t testing.TB, typ stun.Type) ([]byte, stun.TransactionID) {
	t.Helper()
	id := stun.NewTransactionID()
	return stun.AppendFingerprint(stun.AppendHeader(nil, typ, id)), id
}

func TestRespond(t *testing.T) {
	for _, from := range []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:40000"),
		netip.MustParseAddrPort("[::ffff:127.0.0.2]:1"),
		netip.MustParseAddrPort("[::1]:65535"),
	} {
		t.Run(from.String(), func(t *testing.T) {
			req, id := request(t, stun.BindingRequest)
			var msg stun.Message
			out, ok := respond(nil, &msg, req, from)
			if !ok {
				t.Fatal("request not answered")
			}
			var resp stun.Message
			if err := resp.Parse(out); err != nil {
				t.Fatalf("parse response: %v", err)
			}
			if resp.Type != stun.BindingSuccess || resp.TransactionID != id {
				t.Errorf("got %v id %x, want %v id %x", resp.Type, resp.TransactionID, stun.BindingSuccess, id)
			}
			if err := resp.CheckFingerprint(); err != nil {
				t.Errorf("fingerprint: %v", err)
			}
			got, err := resp.XORMappedAddress()
			want := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			if err != nil || got != want {
				t.Errorf("XOR-MAPPED-ADDRESS = %v, %v; want %v", got, err, want)
			}
		})
	}
}

func TestRespondDrops(t *testing.T) {
	indication, _ := request(t, stun.BindingIndication)
	success, _ := request(t, stun.BindingSuccess)
	classic := stun.AppendClassicHeader(nil, stun.BindingRequest, 0x01020304, stun.NewTransactionID())
	truncated, _ := request(t, stun.BindingRequest)
	truncated = truncated[:len(truncated)-4]
	from := netip.MustParseAddrPort("127.0.0.1:1")
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not a stun message at all")},
		{"indication", indication},
		{"success", success},
		{"classic", classic},
		{"truncated", truncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var msg stun.Message
			prefix := []byte{1, 2, 3}
			out, ok := respond(prefix, &msg, tc.pkt, from)
			if ok || !bytes.Equal(out, prefix) {
				t.Errorf("respond = %x, %v; want the buffer unchanged and false", out, ok)
			}
		})
	}
}

func TestRespondAllocs(t *testing.T) {
	req, _ := request(t, stun.BindingRequest)
	from := netip.MustParseAddrPort("127.0.0.1:40000")
	var msg stun.Message
	out := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		out, _ = respond(out[:0], &msg, req, from)
	})
	if allocs != 0 {
		t.Errorf("respond allocates %v times per request, want 0", allocs)
	}
}

func TestRunMainRefusesNonLoopback(t *testing.T) {
	for _, args := range [][]string{
		{"-listen", "0.0.0.0"},
		{"-listen", "192.0.2.1"},
		{"-listen", "localhost"},
		{"-port", "70000"},
	} {
		var stdout, stderr strings.Builder
		if code := runMain(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("runMain(%q) = %d, want 2 (stderr %q)", args, code, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("runMain(%q) printed %q, want nothing: it must not listen", args, stdout.String())
		}
	}
}

func TestServe(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var st stats
	done := make(chan error, 1)
	go func() { done <- serve(conn, &st) }()

	client, err := net.DialUDP("udp", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_ = client.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Write([]byte("junk")); err != nil {
		t.Fatal(err)
	}
	req, id := request(t, stun.BindingRequest)
	if _, err := client.Write(req); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, err := client.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var resp stun.Message
	if err := resp.Parse(buf[:n]); err != nil || resp.TransactionID != id {
		t.Fatalf("response %x: %v", buf[:n], err)
	}
	got, err := resp.XORMappedAddress()
	if want := client.LocalAddr().(*net.UDPAddr).AddrPort(); err != nil || got != want {
		t.Errorf("XOR-MAPPED-ADDRESS = %v, %v; want %v", got, err, want)
	}

	_ = conn.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("serve returned %v, want net.ErrClosed", err)
	}
	if st.answered != 1 || st.dropped != 1 {
		t.Errorf("stats %+v, want 1 answered and 1 dropped", st)
	}
}
