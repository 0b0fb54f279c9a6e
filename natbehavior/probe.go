package natbehavior

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/icebreaker-net/icebreaker/stun"
	"github.com/icebreaker-net/icebreaker/stun/stunclient"
)

// Socket names one of a Prober's local UDP sockets. The driver opens socket
// n the first time a Datagram names it, bound to the same local IP address
// as the others and to a fresh port, and keeps it open (and reading) until
// the Prober is done. The numbers need not be consecutive.
type Socket int

// The sockets of a run.
const (
	sockMapping   Socket = 0 // test I, mapping tests II and III, hairpinning target
	sockFiltering Socket = 1 // filtering tests II and III: fresh, no prior state
	sockHairpin   Socket = 2 // sends to the mapped address of sockMapping
	sockLifeY     Socket = 3 // lifetime test: the requests with RESPONSE-PORT
	sockLifeX0    Socket = 4 // lifetime test: socket X of step i is sockLifeX0+i
)

// Datagram is a request to send now: Packet, from the prober's socket
// Socket, to To. Packet belongs to the Prober: the driver must not modify
// it. It stays valid for the life of the Prober.
type Datagram struct {
	Socket Socket
	To     netip.AddrPort
	Packet []byte
}

// CHANGE-REQUEST flags. RFC 5780, Section 7.2.
const (
	changeIP   uint32 = 0x04
	changePort uint32 = 0x02
)

// kind is what a probe tests.
type kind uint8

const (
	kindBinding kind = iota // test I: UDP connectivity, mapped and other address
	kindMapII               // mapping test II: alternate address, primary port
	kindMapIII              // mapping test III: alternate address and port
	kindFiltII              // filtering test II: change IP and port
	kindFiltIII             // filtering test III: change port
	kindHairpin             // hairpinning: to our own mapped address
	kindLifeX               // lifetime: open a binding on socket X
	kindLifeY               // lifetime: RESPONSE-PORT from socket Y after idling
)

type probeState uint8

const (
	stateQueued probeState = iota
	stateRunning
	stateDone
)

// probe is one STUN transaction: one transaction ID, one request, sent
// and retransmitted from one socket to one address.
type probe struct {
	kind kind
	step int // lifetime: index into Prober.steps
	id   stun.TransactionID
	sock Socket
	to   netip.AddrPort
	req  []byte
	// silent: no answer is an outcome, so the Silence schedule applies.
	silent    bool
	prio      int       // lower starts first
	notBefore time.Time // earliest first transmission

	state probeState
	sends int
	first time.Time // first transmission
	next  time.Time // next retransmission, or the end when final
	final bool
	ended time.Time // when it became done

	// Outcome, once done: answered (resp valid), an error response, a
	// response that made the transaction fail, or none (silence).
	answered  bool
	resp      response
	errResp   *stun.Error
	bad       error
	cancelled bool
}

// response is what the prober keeps of an answer: values only, nothing
// that refers to the packet.
type response struct {
	sock   Socket
	from   netip.AddrPort
	mapped netip.AddrPort
	other  netip.AddrPort // OTHER-ADDRESS, zero if absent or unreadable
	at     time.Time
}

// buildRequest returns a Binding request with the given CHANGE-REQUEST
// flags (none if 0) and RESPONSE-PORT (none if 0), ending in FINGERPRINT.
func buildRequest(id stun.TransactionID, change uint32, responsePort uint16) []byte {
	b := stun.AppendHeader(make([]byte, 0, 48), stun.BindingRequest, id)
	if change != 0 {
		b = stun.AppendUint32Attr(b, stun.AttrChangeRequest, change) // RFC 5780, Section 7.2.
	}
	if responsePort != 0 {
		// RFC 5780, Section 7.5: the port, then two bytes of padding.
		b = stun.AppendUint32Attr(b, stun.AttrResponsePort, uint32(responsePort)<<16)
	}
	return stun.AppendFingerprint(b)
}

// schedule returns the retransmission schedule of p and its cap (0: none).
func (p *Prober) schedule(pr *probe) (stunclient.Retransmit, time.Duration) {
	if pr.silent {
		return p.cfg.Silence, 0
	}
	return p.cfg.Retransmit, p.cfg.Timeout
}

// transmit sends pr (again) at now and sets its next timer.
func (p *Prober) transmit(pr *probe, now time.Time, out []Datagram) []Datagram {
	sched, limit := p.schedule(pr)
	w, last := sched.Wait(pr.sends)
	pr.sends++
	pr.next = now.Add(w)
	pr.final = last
	if limit > 0 {
		if end := pr.first.Add(limit); !pr.next.Before(end) {
			pr.next, pr.final = end, true
		}
	}
	return append(out, Datagram{Socket: pr.sock, To: pr.to, Packet: pr.req})
}

// failure describes why pr ended without an answer, for people.
func (pr *probe) failure() string {
	switch {
	case pr.errResp != nil:
		if pr.errResp.Reason != "" {
			return fmt.Sprintf("the server answered %d %s", pr.errResp.Code, pr.errResp.Reason)
		}
		return fmt.Sprintf("the server answered %d", pr.errResp.Code)
	case pr.bad != nil:
		return pr.bad.Error()
	}
	return fmt.Sprintf("no response from %s in %s", pr.to, stunclient.FormatDuration(pr.ended.Sub(pr.first)))
}

// knownInResponse lists the comprehension-required attributes this client
// understands in a Binding response. RFC 8489, Section 6.3.1.
func knownInResponse(t stun.AttrType) bool {
	switch t {
	case stun.AttrMappedAddress, stun.AttrXORMappedAddress, stun.AttrErrorCode,
		stun.AttrUnknownAttributes, stun.AttrMessageIntegrity, stun.AttrMessageIntegritySHA256,
		stun.AttrUsername, stun.AttrRealm, stun.AttrNonce, stun.AttrPasswordAlgorithm,
		stun.AttrUserhash, stun.AttrPadding, stun.AttrChangeRequest, stun.AttrResponsePort:
		return true
	}
	return false
}
