package ice

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
)

// FuzzCheckerSigned feeds A authenticated messages with fuzzed attributes:
// requests signed with A's password and responses to A's pending check
// signed with B's, so the fuzzer reaches past the integrity checks.
func FuzzCheckerSigned(f *testing.F) {
	var id stun.TransactionID
	req := stun.AppendHeader(nil, stun.BindingRequest, id)
	req = stun.AppendAttrString(req, stun.AttrUsername, "ufA:ufB")
	req = stun.AppendUint32Attr(req, stun.AttrPriority, 1234)
	req = stun.AppendUint64Attr(req, stun.AttrICEControlled, 7)
	req = stun.AppendAttr(req, stun.AttrUseCandidate, nil)
	f.Add(byte(0), byte(0), req[stun.HeaderSize:])
	f.Add(byte(0), byte(1), req[stun.HeaderSize:])
	resp := stun.AppendHeader(nil, stun.BindingSuccess, id)
	resp = stun.AppendXORAddress(resp, stun.AttrXORMappedAddress, ap("203.0.113.1:5000"), id)
	f.Add(byte(1), byte(0), resp[stun.HeaderSize:])
	e := stun.AppendHeader(nil, stun.BindingError, id)
	e = stun.AppendErrorCode(e, stun.CodeRoleConflict, "")
	f.Add(byte(2), byte(0), e[stun.HeaderSize:])
	keyA, _ := stun.ShortTermKey("passwordA-0123456789ab")
	keyB, _ := stun.ShortTermKey("passwordB-0123456789ab")
	f.Fuzz(func(t *testing.T, kind, src byte, attrs []byte) {
		if len(attrs) > 60000 {
			return
		}
		a, _, _ := twoHosts(t, true)
		out, _ := a.Next(epoch)
		var m stun.Message
		if err := m.Parse(out[0].Packet); err != nil {
			t.Fatal(err)
		}
		typ := [...]stun.Type{stun.BindingRequest, stun.BindingSuccess, stun.BindingError}[kind%3]
		key := keyB
		if typ == stun.BindingRequest {
			key = keyA
		}
		pkt := stun.AppendHeader(nil, typ, m.TransactionID)
		pkt = append(pkt, attrs[:len(attrs)&^3]...)
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)-stun.HeaderSize))
		pkt = stun.AppendMessageIntegrity(pkt, key)
		pkt = stun.AppendFingerprint(pkt)
		from := ap("10.0.0.2:2000")
		if src%2 == 1 {
			from = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, src}), uint16(src)*7)
		}
		for i := range 3 {
			now := epoch.Add(time.Duration(i) * 20 * time.Millisecond)
			_ = a.Handle(pkt, ap("10.0.0.1:1000"), from, now)
			a.Next(now)
		}
		a.Next(epoch.Add(time.Minute))
	})
}

// With a fifth of the packets lost both ways (the netem case),
// the agents still connect and agree on one path, for every seed.
func TestCheckerLoss(t *testing.T) {
	var times []time.Duration
	for seed := range uint64(200) {
		a, b, h := relayAgents(t)
		rng := rand.New(rand.NewPCG(seed, 1))
		h.drop = func(_, _ netip.AddrPort) bool { return rng.IntN(5) == 0 }
		// A may upgrade from the relay after B selected it: wait until
		// both agree.
		agree := func() bool {
			pa, _ := a.Selected()
			pb, _ := b.Selected()
			return h.connected() && pa.Local.Addr == pb.Remote.Addr && pa.Remote.Addr == pb.Local.Addr
		}
		if !h.run(time.Minute, agree) {
			pa, _ := a.Selected()
			pb, _ := b.Selected()
			t.Fatalf("seed %d: after %v: A %v %v, B %v %v", seed, h.now.Sub(epoch), a.State(), pa.String(), b.State(), pb.String())
		}
		times = append(times, h.now.Sub(epoch))
	}
	slices.Sort(times)
	t.Logf("time to agree (virtual): median %v, p90 %v, max %v", times[len(times)/2], times[len(times)*9/10], times[len(times)-1])
}
