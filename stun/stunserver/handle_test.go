package stunserver

import (
	"net/netip"
	"testing"

	"github.com/icebreaker-net/icebreaker/stun"
)

// testResponder is an RFC 5780 responder with made-up addresses, for
// exercising handle without sockets.
func testResponder(software string) *responder {
	return &responder{
		software: software,
		rfc5780:  true,
		udpAddrs: [4]netip.AddrPort{
			netip.MustParseAddrPort("192.0.2.1:3478"), netip.MustParseAddrPort("192.0.2.1:3479"),
			netip.MustParseAddrPort("192.0.2.2:3478"), netip.MustParseAddrPort("192.0.2.2:3479"),
		},
	}
}

var (
	testFrom   = netip.MustParseAddrPort("198.51.100.7:40000")
	testFrom6  = netip.MustParseAddrPort("[2001:db8::7]:40000")
	testOrigin = origin{tr: tUDP, role: rolePrimary, local: netip.MustParseAddrPort("192.0.2.1:3478")}
)

// TestHandleNoAllocs proves the per-packet path allocates nothing, for
// each kind of answer.
func TestHandleNoAllocs(t *testing.T) {
	id := stun.NewTransactionID()
	classic := stun.AppendClassicHeader(nil, stun.BindingRequest, 0x01020304, id)
	classic = stun.AppendAttr(classic, stun.AttrChangeRequest, []byte{0, 0, 0, 6})
	garbage := []byte("GET / HTTP/1.1\r\n\r\n")
	for _, tc := range []struct {
		name     string
		software string
		pkt      []byte
		from     netip.AddrPort
		o        origin
	}{
		{"binding", "", request(stun.BindingRequest, id, true), testFrom, testOrigin},
		{"binding ipv6 with software", "icebreaker/1.0", request(stun.BindingRequest, id, true), testFrom6, testOrigin},
		{"change request, padding", "", request(stun.BindingRequest, id, true, changeRequest(6), attr{stun.AttrPadding, make([]byte, 1500)}), testFrom, testOrigin},
		{"response port", "", request(stun.BindingRequest, id, true, responsePort(9999)), testFrom, testOrigin},
		{"classic", "x", classic, testFrom, testOrigin},
		{"420", "icebreaker", request(stun.BindingRequest, id, true, attr{0x0024, make([]byte, 4)}, attr{0x7000, nil}), testFrom, testOrigin},
		{"420 over tcp", "", request(stun.BindingRequest, id, true, changeRequest(4)), testFrom, origin{tr: tTCP, local: testOrigin.local}},
		{"400 other method", "", request(stun.Type{Method: stun.MethodAllocate}, id, true), testFrom, testOrigin},
		{"indication", "", request(stun.BindingIndication, id, true), testFrom, testOrigin},
		{"garbage", "", garbage, testFrom, testOrigin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorker(testResponder(tc.software), new(counters))
			out := make([]byte, 0, scratchSize)
			allocs := testing.AllocsPerRun(200, func() {
				w.handle(out[:0], tc.pkt, tc.from, tc.o)
			})
			if allocs != 0 {
				t.Errorf("%v allocations per packet, want 0", allocs)
			}
		})
	}
}

// TestHandleHandlerNoAllocs checks that passing a message to a Handler
// costs no allocation either.
func TestHandleHandlerNoAllocs(t *testing.T) {
	r := testResponder("")
	r.handler = HandlerFunc(func(out []byte, req *Request) []byte {
		return stun.AppendHeader(out, stun.Type{Method: req.Msg.Type.Method, Class: stun.ClassSuccess}, req.Msg.TransactionID)
	})
	w := newWorker(r, new(counters))
	pkt := request(stun.Type{Method: stun.MethodAllocate}, stun.NewTransactionID(), true)
	out := make([]byte, 0, scratchSize)
	if allocs := testing.AllocsPerRun(200, func() { w.handle(out[:0], pkt, testFrom, testOrigin) }); allocs != 0 {
		t.Errorf("%v allocations per delegated packet, want 0", allocs)
	}
}

// FuzzHandle feeds arbitrary packets to handle: it must not panic, and
// every answer must be a STUN message of the request's transaction,
// sent from a role that exists, with a correct FINGERPRINT unless classic.
func FuzzHandle(f *testing.F) {
	id := stun.TransactionID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	for _, seed := range [][]byte{
		request(stun.BindingRequest, id, true),
		request(stun.BindingRequest, id, true, changeRequest(6), responsePort(1)),
		request(stun.BindingRequest, id, false, attr{stun.AttrPadding, make([]byte, 9)}),
		request(stun.BindingRequest, id, true, attr{0x0024, make([]byte, 4)}),
		stun.AppendClassicHeader(nil, stun.BindingRequest, 7, id),
		request(stun.Type{Method: stun.MethodRefresh}, id, true),
	} {
		f.Add(seed, false)
	}
	for _, pkt := range badInputs() {
		f.Add(pkt, true)
	}
	f.Fuzz(func(t *testing.T, pkt []byte, tcp bool) {
		for _, rfc5780 := range []bool{false, true} {
			r := testResponder("fuzz")
			r.rfc5780 = rfc5780
			w := newWorker(r, new(counters))
			o := testOrigin
			if tcp {
				o.tr = tTCP
			}
			rep := w.handle(nil, pkt, testFrom, o)
			if len(rep.b) == 0 {
				continue
			}
			var req, resp stun.Message
			if err := req.Parse(pkt); err != nil {
				t.Fatalf("answered a packet that does not parse: %v", err)
			}
			if err := resp.Parse(rep.b); err != nil {
				t.Fatalf("answer does not parse: %v", err)
			}
			if resp.TransactionID != req.TransactionID || resp.Classic != req.Classic || resp.Cookie != req.Cookie {
				t.Fatalf("answer to another transaction")
			}
			if resp.Type.Method != req.Type.Method || resp.Type.Class < stun.ClassSuccess {
				t.Fatalf("answer type %v to %v", resp.Type, req.Type)
			}
			if !resp.Classic {
				if err := resp.CheckFingerprint(); err != nil {
					t.Fatalf("answer FINGERPRINT: %v", err)
				}
			}
			if (!rfc5780 || tcp) && rep.via != o.role {
				t.Fatalf("answer from role %v without RFC 5780 over UDP", rep.via)
			}
			if rep.to.Addr() != testFrom.Addr() {
				t.Fatalf("answer to %v, not to the sender's IP", rep.to)
			}
		}
	})
}
