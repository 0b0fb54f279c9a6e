package stunserver

import "sync/atomic"

// Stats is a snapshot of the server's counters. Counters only grow, except
// TCPConns.
type Stats struct {
	Requests       uint64 // requests received, any method, well-formed
	Responses      uint64 // success responses built and handed to the socket
	ErrorResponses uint64 // error responses built and handed to the socket
	Delegated      uint64 // requests and indications passed to Config.Handler
	ChannelData    uint64 // messages that are not STUN passed to an OtherHandler (TURN ChannelData)
	Malformed      uint64 // packets dropped: not STUN, unparsable, truncated, wrong FINGERPRINT
	Dropped        uint64 // well-formed messages not answered: indications, responses
	SendErrors     uint64 // responses the kernel refused to send
	ReadErrors     uint64 // failed socket reads (other than closing)

	TCPConns           int64  // TCP and TLS connections open now
	TCPAccepted        uint64 // TCP and TLS connections accepted
	TCPRejected        uint64 // connections closed at once because MaxTCPConns were open
	TCPTimeouts        uint64 // connections closed by TCPIdleTimeout
	TLSHandshakeErrors uint64 // TLS connections that failed their handshake
	QueueDrops         uint64 // messages a Handler sent later, dropped because a connection's write queue was full

	// The limits against holding connections (Config.PerIP,
	// MessageTimeout, MaxReadBuffers, OtherHandler.FrameOther).
	TCPPerIPRejected     uint64 // connections closed at once: their address held what Config.PerIP allows
	TLSHandshakesRefused uint64 // TLS connections closed before the handshake: their address started too many per second
	TCPMessageTimeouts   uint64 // connections closed because a message took longer than MessageTimeout to arrive
	TCPFramesRefused     uint64 // connections closed because the OtherHandler refused a frame (TURN: ChannelData without a channel)
	TCPBufferRefused     uint64 // connections closed because a message needed a read buffer when MaxReadBuffers were held
	TCPBufferedBytes     int64  // bytes of read buffers held now beyond each connection's first kilobyte
}

// Add adds the counters of o to s, every field, TCPConns included: the sum
// of the Stats of several servers (for example one per listen address).
func (s *Stats) Add(o Stats) {
	s.Requests += o.Requests
	s.Responses += o.Responses
	s.ErrorResponses += o.ErrorResponses
	s.Delegated += o.Delegated
	s.ChannelData += o.ChannelData
	s.Malformed += o.Malformed
	s.Dropped += o.Dropped
	s.SendErrors += o.SendErrors
	s.ReadErrors += o.ReadErrors
	s.TCPConns += o.TCPConns
	s.TCPAccepted += o.TCPAccepted
	s.TCPRejected += o.TCPRejected
	s.TCPTimeouts += o.TCPTimeouts
	s.TLSHandshakeErrors += o.TLSHandshakeErrors
	s.QueueDrops += o.QueueDrops
	s.TCPPerIPRejected += o.TCPPerIPRejected
	s.TLSHandshakesRefused += o.TLSHandshakesRefused
	s.TCPMessageTimeouts += o.TCPMessageTimeouts
	s.TCPFramesRefused += o.TCPFramesRefused
	s.TCPBufferRefused += o.TCPBufferRefused
	s.TCPBufferedBytes += o.TCPBufferedBytes
}

// counters are the per-receiver counters behind Stats. Each UDP socket's
// goroutine has its own, so that no two cores increment the same cache
// line; TCP connections share one.
type counters struct {
	requests, responses, errorResponses, delegated atomic.Uint64
	malformed, dropped, sendErrors, readErrors     atomic.Uint64
	channelData                                    atomic.Uint64
	_                                              [64]byte // keep neighbours off this cache line
}

func (c *counters) addTo(s *Stats) {
	s.Requests += c.requests.Load()
	s.Responses += c.responses.Load()
	s.ErrorResponses += c.errorResponses.Load()
	s.Delegated += c.delegated.Load()
	s.ChannelData += c.channelData.Load()
	s.Malformed += c.malformed.Load()
	s.Dropped += c.dropped.Load()
	s.SendErrors += c.sendErrors.Load()
	s.ReadErrors += c.readErrors.Load()
}
