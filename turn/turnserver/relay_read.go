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

	// The messages to UDP clients that one poller wakeup collects from
	// all its ready relays, built in the poller's slots (valid until
	// Flush) and sent at Flush with one Sender.Send per listening socket:
	// one sendmmsg for many allocations, and UDP GSO for runs to one
	// client of one size.
	out    []udpio.Message
	pend   []pendingOut // what each message of out counts in
	batch  []udpio.Message
	idx    []int // the index in out of each message of batch
	sender *udpio.Sender
	// gsoDisabled is sender.GSODisabled() as last added to the server's
	// counter.
	gsoDisabled uint64
}

// pendingOut is the accounting of one message in relayHandler.out.
type pendingOut struct {
	tgt *udpio.Target // the listening socket it goes out through; nil once sent
	f   *flow
	n   int // data bytes
}

func newRelayHandler(s *Server) *relayHandler {
	var seed [32]byte
	rand.Read(seed[:])
	return &relayHandler{s: s, rng: mrand.NewChaCha8(seed), sender: udpio.NewSender(),
		out: make([]udpio.Message, 0, 256), pend: make([]pendingOut, 0, 256),
		batch: make([]udpio.Message, 0, 256), idx: make([]int, 0, 256)}
}

// newRelayPoller returns a poller of relay sockets, not yet running.
func newRelayPoller(s *Server) (*udpio.Poller[*relay], error) {
	return udpio.NewPoller[*relay](relayPollConfig, newRelayHandler(s))
}

// Received relays datagrams read from r's socket to r's client: to a UDP
// client at the next Flush, together with what other relays of the same
// wakeup produced; to a TCP or TLS client one by one, at once. It
// allocates nothing once out has grown to a wakeup's worth.
func (h *relayHandler) Received(r *relay, ms []udpio.Message) {
	a := r.a
	if a.ctgt == nil {
		for i := range ms {
			r.fromPeer(ms[i].Buf, ms[i].N, ms[i].Addr, h.rng)
		}
		return
	}
	for i := range ms {
		if msg := r.toClientMessage(ms[i].Buf, ms[i].N, ms[i].Addr, h.rng); msg != nil {
			h.out = append(h.out, udpio.Message{Buf: msg, Addr: a.key.client})
			h.pend = append(h.pend, pendingOut{tgt: a.ctgt, f: &a.toClient, n: ms[i].N})
		}
	}
}

// ReadFailed counts a failed read of a relay socket.
func (h *relayHandler) ReadFailed(r *relay, _ error) { r.a.s.readErrors.Add(1) }

// Flush sends the messages collected for UDP clients: for each listening
// socket, its messages in order with one Sender.Send. A failed message is
// counted and dropped alone.
func (h *relayHandler) Flush() {
	for i := range h.pend {
		tgt := h.pend[i].tgt
		if tgt == nil {
			continue
		}
		// Usually every message goes through the one listening socket
		// (one of a few with udp.sockets): gather those of tgt, in order.
		batch, idx := h.batch[:0], h.idx[:0]
		for j := i; j < len(h.pend); j++ {
			if h.pend[j].tgt == tgt {
				batch = append(batch, h.out[j])
				idx = append(idx, j)
			}
		}
		h.sender.Send(tgt, batch)
		for k, j := range idx {
			p := &h.pend[j]
			if batch[k].N >= 0 {
				p.f.packets.Add(1)
				p.f.bytes.Add(uint64(p.n))
			} else {
				p.f.sendErrors.Add(1)
			}
			p.tgt = nil
		}
		clear(batch)
		h.batch, h.idx = batch, idx
	}
	if d := h.sender.GSODisabled(); d != h.gsoDisabled {
		h.s.gsoDisabled.Add(d - h.gsoDisabled)
		h.gsoDisabled = d
	}
	clear(h.out)
	clear(h.pend)
	h.out, h.pend = h.out[:0], h.pend[:0]
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
