package turnserver

import (
	"crypto/rand"
	mrand "math/rand/v2"
	"runtime"

	"github.com/icebreaker-net/icebreaker/internal/udpio"
	"github.com/icebreaker-net/icebreaker/turn"
)

// Reading relay sockets. An idle allocation must cost little (RFC 8656
// servers hold tens of thousands), so relay sockets are read by a few
// udpio.Pollers, one per CPU, each holding its share of the sockets (on
// Linux one epoll instance and one goroutine per Poller; see
// internal/udpio). A Poller reads each datagram into a slot of its arena
// with headroom in front, and relayHandler builds the ChannelData message
// or Data indication to the client around it in place.

// relayReader is a relay's registration with its poller.
type relayReader struct {
	p   *udpio.Poller[*relay]
	reg udpio.Registration
}

// relayPollConfig: room for the longest header in front of a datagram and
// for ChannelData padding after it.
var relayPollConfig = udpio.PollConfig{Headroom: headroom, Tailroom: 4, MaxDatagram: turn.MaxChannelDataLength}

// relayHandler handles what one poller reads from relay sockets. It is
// used by that poller's goroutine only.
type relayHandler struct {
	s   *Server
	rng *mrand.ChaCha8 // Data indication transaction IDs

	// The messages to a UDP client that one batch of a relay collects,
	// built in the poller's slots and sent together with one Sender.Send
	// (sendmmsg, and UDP GSO for runs of one size).
	out    []udpio.Message
	outN   []int // data bytes of each message in out
	sender *udpio.Sender
	// gsoDisabled is sender.GSODisabled() as last added to the server's
	// counter.
	gsoDisabled uint64
}

func newRelayHandler(s *Server) *relayHandler {
	var seed [32]byte
	rand.Read(seed[:])
	return &relayHandler{s: s, rng: mrand.NewChaCha8(seed), sender: udpio.NewSender(),
		out: make([]udpio.Message, 0, 64), outN: make([]int, 0, 64)}
}

// newRelayPoller returns a poller of relay sockets, not yet running.
func newRelayPoller(s *Server) (*udpio.Poller[*relay], error) {
	return udpio.NewPoller[*relay](relayPollConfig, newRelayHandler(s))
}

// Received relays datagrams read from r's socket to r's client: to a UDP
// client together at the end, to a TCP or TLS client one by one. It
// allocates nothing.
func (h *relayHandler) Received(r *relay, ms []udpio.Message) {
	if r.a.ctgt == nil {
		for i := range ms {
			r.fromPeer(ms[i].Buf, ms[i].N, ms[i].Addr, h.rng)
		}
		return
	}
	for i := range ms {
		if msg := r.toClientMessage(ms[i].Buf, ms[i].N, ms[i].Addr, h.rng); msg != nil {
			h.out = append(h.out, udpio.Message{Buf: msg, Addr: r.a.key.client})
			h.outN = append(h.outN, ms[i].N)
		}
	}
	h.flush(r)
}

// ReadFailed counts a failed read of a relay socket.
func (h *relayHandler) ReadFailed(r *relay, _ error) { r.a.s.readErrors.Add(1) }

// flush sends the messages collected for r's client.
func (h *relayHandler) flush(r *relay) {
	if len(h.out) == 0 {
		return
	}
	a := r.a
	f := &a.toClient
	sent, _ := h.sender.Send(a.ctgt, h.out)
	var bytes uint64
	for i := range h.out {
		if h.out[i].N >= 0 {
			bytes += uint64(h.outN[i])
		}
		h.out[i] = udpio.Message{}
	}
	if sent < len(h.out) {
		f.sendErrors.Add(uint64(len(h.out) - sent))
	}
	f.packets.Add(uint64(sent))
	f.bytes.Add(bytes)
	if d := h.sender.GSODisabled(); d != h.gsoDisabled {
		a.s.gsoDisabled.Add(d - h.gsoDisabled)
		h.gsoDisabled = d
	}
	h.out, h.outN = h.out[:0], h.outN[:0]
}

// startPollersLocked starts the pollers if they are not running. s.mu
// must be held.
func (s *Server) startPollersLocked() error {
	if s.pollers != nil {
		return nil
	}
	n := max(1, runtime.GOMAXPROCS(0))
	ps := make([]*udpio.Poller[*relay], 0, n)
	for range n {
		p, err := newRelayPoller(s)
		if err != nil {
			for _, p := range ps {
				p.Close()
			}
			return err
		}
		ps = append(ps, p)
	}
	s.pollers = ps
	for _, p := range ps {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			p.Run()
		}()
	}
	return nil
}

// stopPollers ends the pollers' goroutines, once every relay is closed.
func (s *Server) stopPollers() {
	s.mu.Lock()
	ps := s.pollers
	s.mu.Unlock()
	for _, p := range ps {
		p.Close()
	}
}

// start registers the relay with a poller. s.mu must be held and the
// pollers started (commit).
func (r *relay) start() {
	s := r.a.s
	p := s.pollers[s.nextPoller.Add(1)%uint32(len(s.pollers))]
	reg, err := p.Add(r.conn, r)
	if err != nil {
		s.readErrors.Add(1)
		s.log.Error("turn relay registration failed", "err", err)
		return
	}
	r.rd = relayReader{p: p, reg: reg}
}

// stopReading removes the relay from its poller before the socket closes.
func (r *relay) stopReading() {
	if r.rd.p != nil {
		r.rd.p.Remove(r.rd.reg)
	}
}
