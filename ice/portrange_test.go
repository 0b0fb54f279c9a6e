package ice

import (
	"net"
	"testing"
)

// TestGatherPortRange: with GatherConfig.PortRange, host candidates bind
// in the range, taking the next free port when one is taken; a bad range
// is refused, and a full one is an error.
func TestGatherPortRange(t *testing.T) {
	// Hold a port, and use it and the ten above as the range: the host
	// socket must skip the held one.
	held, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	p := uint16(held.LocalAddr().(*net.UDPAddr).Port)
	if p > 65000 {
		t.Skipf("the system gave port %d, too near the top for a range above it", p)
	}
	gc := loopbackOnly()
	gc.PortRange = PortRange{p, p + 10}
	a, err := NewAgent(AgentConfig{Gather: gc})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	cands, err := a.Gather(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) == 0 {
		t.Fatal("no candidate")
	}
	for _, c := range cands {
		if port := c.Addr.Port(); port < p || port > p+10 || port == p {
			t.Errorf("candidate %v: port outside %d-%d or the held one", c, p+1, p+10)
		}
	}

	gc.PortRange = PortRange{p, p} // only the held port
	b, err := NewAgent(AgentConfig{Gather: gc})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if cands, err := b.Gather(t.Context()); err == nil && len(cands) > 0 {
		t.Errorf("gathered %v in a range whose one port is taken", cands)
	}

	gc.PortRange = PortRange{10, 5}
	if _, err := NewAgent(AgentConfig{Gather: gc}); err == nil {
		t.Error("NewAgent accepted the range 10-5")
	}
}
