package stunclient

import (
	"bufio"
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/turn"
)

// TestShared: a Client on a socket it does not own sends through the
// caller's function and takes only STUN responses from HandlePacket.
func TestShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type out struct {
			b  []byte
			to netip.AddrPort
		}
		sent := make(chan out, 8)
		local := netip.MustParseAddrPort(clientAddr)
		c, err := NewShared(func(b []byte, to netip.AddrPort) error {
			sent <- out{append([]byte(nil), b...), to}
			return nil
		}, local, Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()

		// The "socket owner": answers the second transmission and feeds
		// other traffic to HandlePacket, which must refuse it.
		go func() {
			first := <-sent
			second := <-sent
			if first.to != server || !bytes.Equal(first.b, second.b) {
				t.Errorf("retransmission differs or goes elsewhere")
			}
			var req stun.Message
			if err := req.Parse(second.b); err != nil {
				t.Error(err)
				return
			}
			notOurs := [][]byte{
				{0x40, 0, 0, 4, 1, 2, 3, 4}, // ChannelData
				{0x80, 96, 0, 1},            // RTP
				stun.AppendHeader(nil, stun.BindingRequest, req.TransactionID),              // a request (an ICE check)
				stun.AppendClassicHeader(nil, stun.BindingSuccess, 7, stun.TransactionID{}), // no magic cookie
			}
			for _, p := range notOurs {
				if c.HandlePacket(p, server) {
					t.Errorf("HandlePacket took % x", p[:4])
				}
			}
			if !c.HandlePacket(bindingSuccess(&req, local), server) {
				t.Error("HandlePacket refused the response")
			}
		}()
		res, err := c.Binding(t.Context(), server)
		if err != nil {
			t.Fatal(err)
		}
		if res.Mapped != local || res.Local != local || res.RTT != 0 || res.Response.Attempts != 2 {
			t.Errorf("result %+v, attempts %d", res, res.Response.Attempts)
		}
		if s := c.Stats(); s.Malformed != 0 || s.Received != 1 {
			t.Errorf("stats %+v", s)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"zero", Config{}, ""},
		{"credentials", Config{Username: "u", Password: "p"}, ""},
		{"negative RTO", Config{Retransmit: Retransmit{RTO: -1}}, "negative retransmission"},
		{"negative Rc", Config{Retransmit: Retransmit{Rc: -1}}, "negative retransmission"},
		{"negative stream timeout", Config{StreamTimeout: -time.Second}, "negative stream timeout"},
		{"username alone", Config{Username: "u"}, "go together"},
		{"password alone", Config{Password: "p"}, "go together"},
		{"long username", Config{Username: strings.Repeat("u", 1000), Password: "p"}, "exceeds"},
		{"long software", Config{Software: strings.Repeat("s", 1000)}, "exceeds"},
		{"password with control character", Config{Username: "u", Password: "p\x00"}, "password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			if tc.want != "" {
				if _, err := NewShared(nil, netip.AddrPort{}, tc.cfg); err == nil {
					t.Error("NewShared accepted an invalid Config")
				}
			}
		})
	}
}

// FuzzReadFrame: the stream framer never panics, and whatever it returns
// is one whole message as its header says.
func FuzzReadFrame(f *testing.F) {
	id := stun.TransactionID{1, 2, 3}
	f.Add(stun.AppendXORAddress(stun.AppendHeader(nil, stun.BindingSuccess, id), stun.AttrXORMappedAddress, server, id))
	f.Add([]byte{0x40, 0x01, 0x00, 0x03, 1, 2, 3, 0})
	f.Add([]byte{0xff, 0, 0, 0})
	f.Add([]byte{0, 1, 0, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		var buf []byte
		for range 64 {
			msg, err := readFrame(r, buf, turn.StreamFramer(true))
			if err != nil {
				return
			}
			buf = msg[:0]
			n, _, isSTUN, err := stun.StreamFrame(msg, turn.StreamFramer(true))
			if err != nil || n != len(msg) {
				t.Fatalf("frame of %d bytes, header says %d (%v)", len(msg), n, err)
			}
			if !isSTUN {
				if _, _, err := turn.ParseChannelData(msg); err != nil {
					t.Fatalf("ChannelData frame %x: %v", msg, err)
				}
			}
			buf = msg[:0]
		}
	})
}

// FuzzReceive: a transaction offered arbitrary messages with its ID never
// panics and accepts at most one.
func FuzzReceive(f *testing.F) {
	id := stun.TransactionID{9, 9, 9}
	req := &stun.Message{TransactionID: id, Type: stun.BindingRequest}
	f.Add(bindingSuccess(req, server), false)
	f.Add(stun.AppendMessageIntegrity(bindingSuccess(req, server), []byte("k")), true)
	f.Add(stun.AppendAttrString(errorResponse(req, 401), stun.AttrNonce, "obMatJos2AAAA"), true)
	f.Fuzz(func(t *testing.T, b []byte, keyed bool) {
		if len(b) >= stun.HeaderSize {
			copy(b[8:20], id[:]) // make most inputs reach the checks
		}
		var m stun.Message
		if m.Parse(b) != nil {
			return
		}
		cfg := TransactionConfig{ID: id, Method: stun.MethodBinding}
		if keyed {
			cfg.Key = []byte("k")
		}
		tx := NewTransaction(cfg)
		tx.Next(t0)
		done, _ := tx.Receive(&m, t0)
		if again, _ := tx.Receive(&m, t0); done && again {
			t.Fatal("accepted twice")
		}
	})
}
