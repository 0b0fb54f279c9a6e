package interop

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/icebreaker-net/icebreaker/internal/natlab"
	"github.com/icebreaker-net/icebreaker/internal/refpeers"
)

// `icebreaker send FILE` in lanA to `icebreaker receive` in lanB through
// real NATs: the reference mailbox server and `icebreaker serve` (STUN and
// TURN with a static user) in wan, or serve alone as the rendezvous that
// hands out its STUN and TURN servers with REST credentials; and with
// --relay-only where a direct path exists. The file goes over ICE and QUIC (package
// peer) on the path the ICE matrix above predicts: direct for eim×eim, the
// relay for random×random.

// mailboxPort is the reference mailbox server's port on ServerIP1.
const mailboxPort = "4000"

// peerEvent is the --json "done" event of send and receive.
type peerEvent struct {
	Event      string  `json:"event"`
	Path       string  `json:"path"`
	LocalType  string  `json:"local_type"`
	RemoteType string  `json:"remote_type"`
	SHA256     string  `json:"sha256"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	RTTms      float64 `json:"rtt_ms"`
	ConnectMS  float64 `json:"connect_ms"`
}

// doneEvent returns the done event of a --json output.
func doneEvent(out string) (peerEvent, error) {
	for _, line := range strings.Split(out, "\n") {
		var ev peerEvent
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &ev) == nil && ev.Event == "done" {
			return ev, nil
		}
	}
	return peerEvent{}, fmt.Errorf("no done event")
}

func TestSendFileThroughNATs(t *testing.T) {
	t.Parallel()
	refpeers.RequirePythonModule(t, "wormhole_mailbox_server")
	bin := icebreaker(t)
	src := t.TempDir()
	data := make([]byte, 8<<20)
	rand.Read(data)
	file := filepath.Join(src, "eight.bin")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	for _, c := range []struct {
		a, b natlab.Mode
		want iceOutcome
		// ours: serve's own rendezvous instead of the reference
		// mailbox server, and no --stun/--turn: the peers gather with
		// the ICE servers and REST credentials it hands out.
		ours bool
		// relayOnly: --relay-only on the sender, where a direct path
		// exists.
		relayOnly bool
		// portmap: miniupnpd runs on natA, and the peers ask their
		// router for a port mapping, as they do by default: the mapping
		// lets the other side in, so random×random goes direct.
		portmap bool
	}{
		{natlab.EIM, natlab.EIM, outDirect, false, false, false},
		{natlab.EIM, natlab.EIM, outRelay, false, true, false},
		{natlab.Random, natlab.Random, outRelay, false, false, false},
		{natlab.Random, natlab.Random, outRelay, true, false, false},
		{natlab.Random, natlab.Random, outDirect, false, false, true},
	} {
		name := fmt.Sprintf("%s×%s", c.a, c.b)
		if c.ours {
			name += "/our-rendezvous"
		}
		if c.relayOnly {
			name += "/relay-only"
		}
		if c.portmap {
			name += "/portmap"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := expectedOutcome(t, c.a, c.b); got != c.want && !c.relayOnly && !c.portmap {
				t.Fatalf("the ICE matrix says %s", got)
			}
			ctx := testContext(t)
			lab := natlab.New(t, natlab.Options{A: c.a, B: c.b, PortMapA: natlab.PortMapOptions{Enable: c.portmap}})
			if c.portmap {
				lab.StartMiniUPnPd(ctx, natlab.MiniUPnPdConfig{UPnP: true, PCPAndPMP: true})
			}
			metricsURL := "http://" + natlab.ServerIP1 + ":9100/metrics"
			args := []string{"serve", "--listen", natlab.ServerIP1, "--port", "3478", "--user-db", "none",
				"--allow-peer", "203.0.113.0/24", "--metrics", natlab.ServerIP1 + ":9100"}
			if c.ours {
				args = append(args, "--rest-secret", turnRESTSecret, "--rendezvous", natlab.ServerIP1+":"+mailboxPort,
					"--transit-relay", "off", "--rendezvous-db", "none")
			} else {
				args = append(args, "--user", turnUser+":"+turnPass, "--rendezvous", "off")
			}
			srv := lab.Start(ctx, "wan", bin, args...)
			if err := srv.WaitForOutput(ctx, natlab.ServerIP1+":3478"); err != nil {
				t.Fatal(err)
			}
			l := &iceLab{lab: lab, bin: bin, srv: srv}
			rendezvous := "ws://" + natlab.ServerIP1 + ":" + mailboxPort + "/v1"
			common := []string{"--rendezvous", rendezvous, "--json", "-v"}
			if c.portmap {
				// The lab's daemon answers slower than a home router when
				// the suite is busy (nftables changes); timings go to the
				// bench, not here.
				common = append(common, "--portmap-timeout", "3s")
			}
			if c.ours {
				if err := srv.WaitForOutput(ctx, rendezvous); err != nil {
					t.Fatalf("rendezvous: %v\n%s", err, srv.Output())
				}
			} else {
				mb := l.lab.Start(ctx, "wan", "/usr/bin/python3", "-m", "twisted", "wormhole-mailbox",
					"--channel-db="+filepath.Join(t.TempDir(), "relay.sqlite"),
					"--port=tcp:"+mailboxPort+":interface="+natlab.ServerIP1)
				if err := mb.WaitForOutput(ctx, "starting on "+mailboxPort); err != nil {
					t.Fatalf("mailbox server: %v\n%s", err, mb.Output())
				}
				server := natlab.ServerIP1 + ":3478"
				common = append(common, "--stun", server, "--turn", "turn:"+server, "--turn-user", turnUser, "--turn-pass", turnPass)
			}
			const code = "4-natlab-file"
			dst := t.TempDir()
			sendArgs := append([]string{"send", file, "--code", code}, common...)
			if c.relayOnly {
				sendArgs = append(sendArgs, "--relay-only")
			}
			send := l.lab.Start(ctx, "lanA", bin, sendArgs...)
			recv := l.lab.Start(ctx, "lanB", bin, append([]string{"receive", "--accept-file", "-o", dst, code}, common...)...)
			errS, errR := send.Wait(), recv.Wait()
			dump := fmt.Sprintf("send (lanA):\n%s\nreceive (lanB):\n%s", send.Output(), recv.Output())
			if errS != nil || errR != nil {
				t.Fatalf("send: %v, receive: %v\n%s", errS, errR, dump)
			}
			got, err := os.ReadFile(filepath.Join(dst, "eight.bin"))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("received: %v, %d bytes (want %d equal ones)\n%s", err, len(got), len(data), dump)
			}
			for who, out := range map[string]string{"send": send.Output(), "receive": recv.Output()} {
				ev := checkDone(t, who, out, sum, int64(len(data)), dump)
				if ev.Path != string(c.want) {
					t.Errorf("%s: path %s (local %s, remote %s), want %s\n%s", who, ev.Path, ev.LocalType, ev.RemoteType, c.want, dump)
				}
				t.Logf("%s×%s %s: %s path, local %s, remote %s, connected in %.0f ms, rtt %.2f ms, %d bytes in %.2f s",
					c.a, c.b, who, ev.Path, ev.LocalType, ev.RemoteType, ev.ConnectMS, ev.RTTms, ev.Bytes, ev.Seconds)
			}
			if c.want != outRelay {
				return
			}
			// Through the relay, the client's packets to the peer must
			// go as ChannelData once the data flows, not as Send
			// indications (36 bytes more, and 1200-byte QUIC packets in
			// them would not fit a 1280-byte IPv6 path): the TURN
			// client binds a channel after two packets to a peer, which
			// the ICE checks are. The server's counters tell: of the
			// packets it relayed to the peer (the relayed side's QUIC
			// ACKs, or its data), all but the checks before the channel
			// (two per relayed pair and peer address, a few dozen with
			// two allocations a side) came as ChannelData: nine in ten
			// at least, with hundreds relayed.
			out, err := l.lab.Run(ctx, "wan", "/usr/bin/python3", "-c",
				"import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('"+metricsURL+"').read().decode())")
			if err != nil {
				t.Fatalf("metrics: %v\n%s", err, out)
			}
			channelData := metric(string(out), "icebreaker_stun_channel_data_messages_total")
			toPeer := metric(string(out), `icebreaker_turn_relayed_packets_total{direction="to_peer"}`)
			t.Logf("TURN server: relayed %.0f packets to peers, %.0f ChannelData messages came in", toPeer, channelData)
			if toPeer < 100 || channelData < 0.9*toPeer {
				t.Errorf("the relayed data did not go as ChannelData: %.0f packets relayed to the peer, %.0f ChannelData", toPeer, channelData)
			}
		})
	}
}

// checkDone returns the done event in the --json output of who (send or
// receive), and checks its size and SHA-256; dump is shown when there is
// none.
func checkDone(t *testing.T, who, out string, sum [sha256.Size]byte, n int64, dump string) peerEvent {
	t.Helper()
	ev, err := doneEvent(out)
	if err != nil {
		t.Fatalf("%s: %v\n%s", who, err, dump)
	}
	if ev.SHA256 != hex.EncodeToString(sum[:]) || ev.Bytes != n {
		t.Errorf("%s: %d bytes, sha256 %s; want %d, %x", who, ev.Bytes, ev.SHA256, n, sum)
	}
	return ev
}

// metric returns the value of a counter without labels in Prometheus text,
// or the sum over its labels.
func metric(text, name string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}
