package portmap

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"
)

// A MAP request laid out by hand from RFC 6887, Figures 2 and 9.
func TestPCPMapRequest(t *testing.T) {
	m := pcpMap{Protocol: protoUDP, InternalPort: 40000, Port: 40000}
	copy(m.Nonce[:], "0123456789ab")
	got := appendPCPMapRequest(nil, netip.MustParseAddr("10.9.1.2"), 7200, &m)
	want := "02010000" + "00001c20" + "00000000000000000000ffff0a090102" +
		hex.EncodeToString([]byte("0123456789ab")) + "11000000" + "9c40" + "9c40" +
		"00000000000000000000ffff00000000"
	if hex.EncodeToString(got) != want {
		t.Fatalf("request\n got %x\nwant %s", got, want)
	}
	if len(got) != pcpHeaderLen+pcpMapLen {
		t.Fatalf("length %d", len(got))
	}
	a := appendPCPAnnounceRequest(nil, netip.MustParseAddr("10.9.1.2"))
	if hex.EncodeToString(a) != "0200000000000000"+"00000000000000000000ffff0a090102" {
		t.Fatalf("announce %x", a)
	}
}

func TestParsePCPResponse(t *testing.T) {
	ok := pcpResp{Opcode: pcpOpMap, Lifetime: 120, Epoch: 99,
		Map: pcpMap{Protocol: protoUDP, InternalPort: 1, Port: 2, Addr: netip.MustParseAddr("11.0.0.10")}}
	good := appendPCPResponse(nil, &ok)
	withOpt := append(bytes.Clone(good), 0x01, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0) // THIRD_PARTY-like option, padded
	errResp := appendPCPResponse(nil, &pcpResp{Opcode: pcpOpMap, Result: PCPNotAuthorized, Lifetime: 30})
	for _, c := range []struct {
		name    string
		b       []byte
		wantErr bool
		notPCP  bool
	}{
		{"map", good, false, false},
		{"map with option", withOpt, false, false},
		{"truncated error", errResp[:pcpHeaderLen], false, false},
		{"nat-pmp", []byte{0, 0x80, 0, 1, 0, 0, 0, 0}, true, true},
		{"short", good[:20], true, false},
		{"truncated map", good[:pcpHeaderLen+8], true, false},
		{"bad version", append([]byte{3}, good[1:]...), true, false},
		{"request", append([]byte{2, 1}, good[2:]...), true, false},
		{"option overrun", append(bytes.Clone(good), 1, 0, 0, 40), true, false},
		{"odd length", append(bytes.Clone(good), 0), true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := parsePCPResponse(c.b)
			if (err != nil) != c.wantErr || errors.Is(err, errNotPCP) != c.notPCP {
				t.Fatalf("err %v, want error %v (not PCP %v)", err, c.wantErr, c.notPCP)
			}
			if c.name == "map" && r != ok {
				t.Fatalf("got %+v, want %+v", r, ok)
			}
		})
	}
}

func TestPCPErrorNames(t *testing.T) {
	e := &PCPError{Code: PCPNoResources}
	if e.Error() != "portmap: PCP error 8 (NO_RESOURCES)" || !e.Transient() {
		t.Fatalf("%v transient=%v", e, e.Transient())
	}
	if (&PCPError{Code: PCPNotAuthorized}).Transient() || PCPResultCode(200).String() != "PCPResultCode(200)" {
		t.Fatal("names")
	}
}

// FuzzParsePCPResponse checks that no input panics and that what parses
// survives append and parse again unchanged.
func FuzzParsePCPResponse(f *testing.F) {
	ok := pcpResp{Opcode: pcpOpMap, Lifetime: 120, Map: pcpMap{Protocol: protoUDP, InternalPort: 1, Port: 2, Addr: netip.MustParseAddr("11.0.0.10")}}
	f.Add(appendPCPResponse(nil, &ok))
	f.Add(appendPCPResponse(nil, &pcpResp{Opcode: pcpOpAnnounce, Epoch: 7}))
	f.Add(append(appendPCPResponse(nil, &ok), 0x12, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
	f.Add([]byte{0, 0x80, 0, 0, 0, 0, 0, 1, 11, 0, 0, 10})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parsePCPResponse(b)
		if err != nil {
			return
		}
		if r.Opcode == pcpOpMap && len(b) < pcpHeaderLen+pcpMapLen {
			return // a truncated error response
		}
		r2, err := parsePCPResponse(appendPCPResponse(nil, &r))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if r2 != r {
			t.Fatalf("round trip\n got %+v\nwant %+v", r2, r)
		}
	})
}
