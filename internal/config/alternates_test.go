package config

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestOverflowAlternates(t *testing.T) {
	for _, tt := range []errorCase{
		{"alternate name", "turn:\n  quotas: {total_allocations: 5, overflow_alternates: [turn2.example:3478]}\n", "turn.quotas.overflow_alternates[0]", 2, "is not IP:PORT"},
		{"alternate no port", "turn:\n  quotas: {total_allocations: 5, overflow_alternates: [192.0.2.2]}\n", "turn.quotas.overflow_alternates[0]", 2, "is not IP:PORT"},
		{"alternate unspecified", "turn:\n  quotas: {total_allocations: 5, overflow_alternates: [\"0.0.0.0:3478\"]}\n", "turn.quotas.overflow_alternates[0]", 2, "not an address a client can be sent to"},
		{"alternate without limit", "turn:\n  quotas: {overflow_alternates: [\"192.0.2.2:3478\"]}\n", "turn.quotas.overflow_alternates", 2, "needs turn.quotas.total_allocations"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			checkError(t, err, tt)
		})
	}
	c, err := Parse([]byte("turn:\n  quotas:\n    total_allocations: 5\n    overflow_alternates: [\"192.0.2.2:3478\", \"[2001:db8::2]:3479\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.2:3478"), netip.MustParseAddrPort("[2001:db8::2]:3479")}
	if got := c.TURN.Quotas.Alternates(); !reflect.DeepEqual(got, want) {
		t.Errorf("Alternates() = %v, want %v", got, want)
	}
}

// TestOverflowAlternatesNeedRestart: a reload does not apply a changed
// overflow_alternates, and says so.
func TestOverflowAlternatesNeedRestart(t *testing.T) {
	a, err := Parse([]byte("turn:\n  quotas: {total_allocations: 5, overflow_alternates: [\"192.0.2.2:3478\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse([]byte("turn:\n  quotas: {total_allocations: 6, overflow_alternates: [\"192.0.2.3:3478\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := a.ReloadChanges(b); !reflect.DeepEqual(got, []string{"turn.quotas"}) {
		t.Errorf("ReloadChanges = %v, want [turn.quotas]", got)
	}
}
