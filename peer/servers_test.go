package peer

import (
	"context"
	"net/netip"
	"testing"

	"github.com/icebreaker-net/icebreaker/ice"
	"github.com/icebreaker-net/icebreaker/turn/turnclient"
	"github.com/icebreaker-net/icebreaker/wormhole"
)

// fakeResolver resolves every name to one address, so that the test looks
// no public name up.
type fakeResolver netip.Addr

func (r fakeResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.Addr(r)}, nil
}

func TestAddServers(t *testing.T) {
	var gc ice.GatherConfig
	err := AddServers(t.Context(), &gc, []wormhole.ICEServer{
		{URLs: []string{"stun:192.0.2.1:3478", "stun:stun.example"}},
		{URLs: []string{"turn:192.0.2.1?transport=udp", "turn:192.0.2.1:3478?transport=tcp", "turns:turn.example:5349"},
			Username: "1700000000:u", Credential: "secret"},
		{URLs: []string{"turn:192.0.2.2"}},        // no credentials: skipped, reported
		{URLs: []string{"http://not.a.stun.uri"}}, // skipped, reported
	}, fakeResolver(netip.MustParseAddr("192.0.2.9")))
	if err == nil {
		t.Error("AddServers reported no error for the unusable entries")
	}
	wantSTUN := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:3478"), netip.MustParseAddrPort("192.0.2.9:3478")}
	if len(gc.STUNServers) != 2 || gc.STUNServers[0] != wantSTUN[0] || gc.STUNServers[1] != wantSTUN[1] {
		t.Errorf("STUN servers %v, want %v", gc.STUNServers, wantSTUN)
	}
	if len(gc.TURNServers) != 3 {
		t.Fatalf("TURN servers %+v, want 3", gc.TURNServers)
	}
	for i, want := range []struct {
		addr string
		tr   turnclient.Transport
	}{{"192.0.2.1:3478", turnclient.UDP}, {"192.0.2.1:3478", turnclient.TCP}, {"192.0.2.9:5349", turnclient.TLS}} {
		ts := gc.TURNServers[i]
		if ts.Addr.String() != want.addr || ts.Transport != want.tr || ts.Username != "1700000000:u" || ts.Password != "secret" {
			t.Errorf("TURN server %d: %+v, want %s over %v with the credentials", i, ts, want.addr, want.tr)
		}
	}
	if err := gc.Validate(); err != nil {
		t.Errorf("the result does not validate: %v", err)
	}
}
