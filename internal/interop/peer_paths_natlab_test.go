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
//     retransmitted, get through, the controlling agent nominates the
//     direct pair and both move to it; the chunks that follow go direct.
//   - direct-then-relay: the peers connect directly, keeping the relayed
//     pair as a backup; then wan drops the direct path mid-transfer: the
//     agents find the direct pair disconnected (no consent answer for
//     ice.AgentConfig.DisconnectedAfter), move back to the relay, and the
//     chunks that follow go that way.
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
		blocked bool // the direct path at the start; the test flips it
	}{
		{"relay-then-direct", true},
		{"direct-then-relay", false},
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
			first := map[bool]string{true: "relay", false: "direct"}[c.blocked]
			for _, p := range []*pipeEnd{a, b} {
				if got := connectedPath(p.proc.Output()); got != first {
					t.Fatalf("connected on the %q path, want %s\n%s", got, first, dump())
				}
			}
			before := lab.counts(t, ctx)
			if c.blocked && before.Server.Bytes < uint64(src.n) {
				t.Errorf("the first %d bytes went relayed, but only %d bytes reached the server", src.n, before.Server.Bytes)
			}
			if !c.blocked && before.Direct.Bytes < uint64(src.n) {
				t.Errorf("the first %d bytes went direct, but only %d bytes crossed wan between the NATs", src.n, before.Direct.Bytes)
			}

			if err := lab.BlockDirect(!c.blocked); err != nil {
				t.Fatal(err)
			}
			// Chunks until both agents have moved and a chunk
			// went the new way: at most maxChunks, within the
			// test's context.
			const maxChunks = 200
			moved := false
			for i := 0; i < maxChunks && !moved; i++ {
				mark := lab.counts(t, ctx)
				if err := sendChunk(ctx, src, chunk, b); err != nil {
					t.Fatalf("chunk %d after the change: %v\n%s", i, err, dump())
				}
				now := lab.counts(t, ctx)
				onNew := now.Direct.Sub(mark.Direct).Bytes >= chunk
				if !c.blocked {
					onNew = now.Server.Sub(mark.Server).Bytes >= chunk
				}
				moved = onNew && lastChangeIs(a.proc.Output(), !c.blocked) && lastChangeIs(b.proc.Output(), !c.blocked)
			}
			if !moved {
				t.Fatalf("after %d chunks the peers had not moved\n%s", maxChunks, dump())
			}
			after := lab.counts(t, ctx)
			// The rest, then the end of the input.
			for src.n < 4<<20 {
				if err := src.write(chunk); err != nil {
					t.Fatalf("writing: %v\n%s", err, dump())
				}
			}
			finish(t, src, a, b, dump)
			end := lab.counts(t, ctx)
			for _, p := range []*pipeEnd{a, b} {
				t.Logf("path changes: %v", pathChanges(p.proc.Output()))
			}
			t.Logf("wan before the change: direct %d bytes (%d dropped), server %d bytes", before.Direct.Bytes, before.Blocked.Bytes, before.Server.Bytes)
			t.Logf("wan until the move: direct %d bytes (%d dropped), server %d bytes",
				after.Direct.Sub(before.Direct).Bytes, after.Blocked.Sub(before.Blocked).Bytes, after.Server.Sub(before.Server).Bytes)
			t.Logf("wan after the move: direct %d bytes (%d dropped), server %d bytes; %d bytes in all, sha256 equal",
				end.Direct.Sub(after.Direct).Bytes, end.Blocked.Sub(after.Blocked).Bytes, end.Server.Sub(after.Server).Bytes, src.n)
			want := map[bool]string{true: "direct", false: "relay"}[c.blocked]
			for _, p := range []*pipeEnd{a, b} {
				if out := p.proc.Output(); !strings.Contains(out, "pipe closed") || !strings.Contains(out, "path: "+want) {
					t.Errorf("pipe's summary does not name the %s path\n%s", want, out)
				}
			}
		})
	}
}
