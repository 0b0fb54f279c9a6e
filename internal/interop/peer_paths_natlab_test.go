package interop

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/natlab"
)

// TestPipePathChangesThroughNATs: issue 12's "relay first, then direct"
// and "back to the relay when direct fails", made deterministic with
// `icebreaker pipe` between lanA and lanB behind two EIM NATs (a direct
// path exists) and a producer that writes its data in chunks, each one
// only once the previous one has come out at the other side, so that the
// test changes the network between two chunks it knows to have arrived.
//
//   - relay-then-direct: wan drops the traffic between the two NATs'
//     public addresses (natlab.Lab.BlockDirect), so the peers connect
//     over the TURN relay in wan; the first chunk goes that way. Then the
//     rule goes: the ICE checks of the direct pair, still being
//     retransmitted (or, once they all failed, checked again after
//     ice.AgentConfig.Recheck), get through, the controlling agent
//     nominates the direct pair and both move to it; the chunks that
//     follow go direct.
//   - direct-then-relay: the peers connect directly, keeping the relayed
//     pair as a backup; then wan drops the direct path mid-transfer: the
//     agents find the direct pair disconnected (no consent answer for
//     ice.AgentConfig.DisconnectedAfter), move back to the relay, and the
//     chunks that follow, and the end, go that way.
//   - direct-then-relay-then-direct: as direct-then-relay, then the drop
//     rule goes again: the controlling agent, which goes on nominating
//     the direct pair, gets its answer, and both move back to it.
//
// Each move is seen three ways: the peers' -v logs (the ICE agent's
// "selected pair changed" and "back to the relayed backup"), wan's
// nftables counters on the direct flow and on the flow to the server,
// and pipe's summary path. In the end every byte arrived, the hash equal.
func TestPipePathChangesThroughNATs(t *testing.T) {
	t.Parallel()
	bin := icebreaker(t)
	for _, c := range []struct {
		name    string
		blocked bool   // the direct path at the start
		flips   []bool // then blocked or not, one phase each
	}{
		{"relay-then-direct", true, []bool{false}},
		{"direct-then-relay", false, []bool{true}},
		{"direct-then-relay-then-direct", false, []bool{true, false}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// A move back to the relay takes DisconnectedAfter
			// (12.5 s) and a consent interval: more than testTimeout
			// leaves on a busy machine.
			ctx, cancel := context.WithTimeout(t.Context(), 2*testTimeout)
			defer cancel()
			lab := newPeerLab(t, ctx, bin, natlab.Options{A: natlab.EIM, B: natlab.EIM})
			if err := lab.BlockDirect(c.blocked); err != nil {
				t.Fatal(err)
			}
			const code = "5-natlab-paths"
			a := lab.startPipe(t, ctx, "lanA", true, "--code", code)
			b := lab.startPipe(t, ctx, "lanB", false, code)
			dump := func() string {
				return fmt.Sprintf("pipe (lanA):\n%s\npipe (lanB):\n%s", a.proc.Output(), b.proc.Output())
			}
			src := newProducer(a.in)
			const chunk = 64 << 10
			if err := sendChunk(ctx, src, 4*chunk, b); err != nil {
				t.Fatalf("first chunk: %v\n%s", err, dump())
			}
			kind := map[bool]string{true: "relay", false: "direct"}
			for _, p := range []*pipeEnd{a, b} {
				if got := pathOf(ctx, p); got != kind[c.blocked] {
					t.Fatalf("connected on the %q path, want %s\n%s", got, kind[c.blocked], dump())
				}
			}
			mark := lab.counts(t, ctx)
			if c.blocked && mark.Server.Bytes < uint64(src.n) {
				t.Errorf("the first %d bytes went relayed, but only %d bytes reached the server", src.n, mark.Server.Bytes)
			}
			if !c.blocked && mark.Direct.Bytes < uint64(src.n) {
				t.Errorf("the first %d bytes went direct, but only %d bytes crossed wan between the NATs", src.n, mark.Direct.Bytes)
			}
			t.Logf("on the %s path: wan forwarded %d bytes direct (dropped %d), %d went to the server",
				kind[c.blocked], mark.Direct.Bytes, mark.Blocked.Bytes, mark.Server.Bytes)

			changes := 0
			for _, blocked := range c.flips {
				if err := lab.BlockDirect(blocked); err != nil {
					t.Fatal(err)
				}
				// Chunks until both agents have moved and a
				// chunk went the new way: at most maxChunks,
				// within the test's context.
				const maxChunks = 200
				moved := false
				for i := 0; i < maxChunks && !moved; i++ {
					before := lab.counts(t, ctx)
					if err := sendChunk(ctx, src, chunk, b); err != nil {
						t.Fatalf("chunk %d after the change to %s: %v\n%s", i, kind[blocked], err, dump())
					}
					after := lab.counts(t, ctx)
					onNew := after.Direct.Sub(before.Direct).Bytes >= chunk
					if blocked {
						onNew = after.Server.Sub(before.Server).Bytes >= chunk
					}
					outA, outB := a.proc.Output(), b.proc.Output()
					moved = onNew && len(pathChanges(outA)) > changes && lastChangeIs(outA, blocked) &&
						len(pathChanges(outB)) > changes && lastChangeIs(outB, blocked)
				}
				if !moved {
					t.Fatalf("after %d chunks the peers had not moved to the %s path\n%s", maxChunks, kind[blocked], dump())
				}
				changes++
				now := lab.counts(t, ctx)
				t.Logf("moved to the %s path: meanwhile wan forwarded %d bytes direct (dropped %d), %d went to the server",
					kind[blocked], now.Direct.Sub(mark.Direct).Bytes, now.Blocked.Sub(mark.Blocked).Bytes, now.Server.Sub(mark.Server).Bytes)
				mark = now
			}
			// The rest, then the end of the input.
			for src.n < 4<<20 {
				if err := src.write(chunk); err != nil {
					t.Fatalf("writing: %v\n%s", err, dump())
				}
			}
			finish(t, src, a, b, dump)
			end := lab.counts(t, ctx)
			last := c.flips[len(c.flips)-1]
			t.Logf("then on the %s path: wan forwarded %d bytes direct (dropped %d), %d went to the server; %d bytes in all, sha256 equal",
				kind[last], end.Direct.Sub(mark.Direct).Bytes, end.Blocked.Sub(mark.Blocked).Bytes, end.Server.Sub(mark.Server).Bytes, src.n)
			for _, p := range []*pipeEnd{a, b} {
				out := p.proc.Output()
				t.Logf("path changes: %v", pathChanges(out))
				if !strings.Contains(out, "pipe closed") || !strings.Contains(out, "path: "+kind[last]) {
					t.Errorf("pipe's summary does not name the %s path\n%s", kind[last], out)
				}
			}
		})
	}
}
