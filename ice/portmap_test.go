package ice

import (
	"log/slog"
	"net/netip"
	"testing"
)

func TestPortmapGate(t *testing.T) {
	a := &Agent{log: slog.New(slog.DiscardHandler)}
	mapped := Candidate{Type: TypeServerReflexive, Addr: netip.MustParseAddrPort("11.0.0.10:40000"), Origin: OriginPortMap}
	stunSame := Candidate{Addr: netip.MustParseAddrPort("11.0.0.10:51234")}
	stunOther := Candidate{Addr: netip.MustParseAddrPort("203.0.113.10:51234")}
	for _, c := range []struct {
		name  string
		stuns []Candidate // nil entries: a Binding that failed
		want  bool
	}{
		{"same address", []Candidate{stunSame}, true},
		{"double NAT", []Candidate{stunOther}, false},
		{"one of two servers agrees", []Candidate{stunOther, stunSame}, true},
		{"no STUN server", nil, true},
		{"STUN failed", []Candidate{{}}, true},
	} {
		for _, mappedFirst := range []bool{true, false} {
			g := newPortmapGate(a)
			s := &sock{addr: netip.MustParseAddrPort("10.9.1.2:40000")}
			for range c.stuns {
				g.expect(s)
			}
			var got []Candidate
			if mappedFirst {
				if m, ok := g.mapped(s, mapped); ok {
					got = append(got, m)
				}
			}
			for _, st := range c.stuns {
				if m, ok := g.stun(s, st, st.Addr.IsValid()); ok {
					got = append(got, m)
				}
			}
			if !mappedFirst {
				if m, ok := g.mapped(s, mapped); ok {
					got = append(got, m)
				}
			}
			if (len(got) == 1) != c.want || len(got) > 1 {
				t.Errorf("%s (mapped first %v): released %v, want %v", c.name, mappedFirst, got, c.want)
			}
		}
	}
}

func TestOriginString(t *testing.T) {
	for o, s := range map[Origin]string{OriginUnknown: "unknown", OriginHost: "host", OriginSTUN: "stun", OriginTURN: "turn", OriginPortMap: "portmap", 9: "Origin(9)"} {
		if o.String() != s {
			t.Errorf("%d: %q", o, o.String())
		}
	}
}

func TestMarkPortMapped(t *testing.T) {
	base := netip.MustParseAddrPort("10.9.1.2:4000")
	ext := netip.MustParseAddrPort("11.0.0.10:4000")
	cands := []Candidate{
		{Type: TypeHost, Addr: base, Base: base, Origin: OriginHost},
		{Type: TypeServerReflexive, Addr: ext, Related: base, Base: base, Origin: OriginSTUN},
	}
	markPortMapped(cands, Candidate{Type: TypeServerReflexive, Addr: ext, Base: base, Origin: OriginSTUN})
	if cands[1].Origin != OriginSTUN {
		t.Fatal("a STUN duplicate changed the origin")
	}
	markPortMapped(cands, Candidate{Type: TypeServerReflexive, Addr: ext, Base: base, Origin: OriginPortMap})
	if cands[0].Origin != OriginHost || cands[1].Origin != OriginPortMap {
		t.Fatalf("origins %v %v", cands[0].Origin, cands[1].Origin)
	}
}
