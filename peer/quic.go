package peer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/quic-go/quic-go"
)

// PacketSize is the fixed size of QUIC packets: QUIC's minimum (RFC 9000,
// Section 14.1), which with 4 bytes of TURN ChannelData (RFC 8656, Section
// 12.4), 8 of UDP and 40 of IPv6 stays within IPv6's 1280-byte minimum
// MTU, so it fits every path ICE may pick without path-MTU discovery.
const PacketSize = 1200

// IdleTimeout is QUIC's idle timeout: twice the ICE consent timeout
// (RFC 7675), so that QUIC outlives the agent moving to another pair when
// one path fails; KeepAlive keeps an idle connection (and the NAT
// bindings of its pair) alive well within it.
const (
	IdleTimeout = 2 * 30 * time.Second
	KeepAlive   = 5 * time.Second
)

// QUICConfig returns a new copy of the QUIC configuration that both peers
// use over ICE: a fixed PacketSize, no path-MTU discovery, IdleTimeout and
// KeepAlive. It is exported for bench/peer, which runs quic-go with it on
// a plain UDP socket as the ceiling of the direct path.
func QUICConfig() *quic.Config { return quicConfig() }

// StreamWindow and ConnectionWindow are the largest QUIC flow-control
// windows (RFC 9000, Section 4) of a stream and of the connection; quic-go
// starts below them and grows them as the transfer shows it needs them.
// A bulk transfer runs at most a window per round trip: 16 MiB is 1.6 GB/s
// at 10 ms, and through a TURN relay on a busy host a round trip of a few
// milliseconds is common. quic-go's defaults (512 KiB at first, 6 MiB at
// most) held a relayed transfer on loopback to about 30 MB/s.
const (
	StreamWindow     = 16 << 20
	ConnectionWindow = 24 << 20
)

// quicConfig is the QUIC configuration of both sides.
func quicConfig() *quic.Config {
	return &quic.Config{
		InitialPacketSize:       PacketSize,
		DisablePathMTUDiscovery: true, // no DF bit on a non-UDP conn: no PMTUD
		MaxIdleTimeout:          IdleTimeout,
		KeepAlivePeriod:         KeepAlive,
		HandshakeIdleTimeout:    15 * time.Second,
		MaxIncomingStreams:      1024,
		MaxIncomingUniStreams:   -1,

		InitialStreamReceiveWindow:     StreamWindow / 4,
		MaxStreamReceiveWindow:         StreamWindow,
		InitialConnectionReceiveWindow: StreamWindow / 2,
		MaxConnectionReceiveWindow:     ConnectionWindow,
	}
}

// peerAddr is the one remote address packetConn reports: the peer, whatever
// pair ICE has selected.
type peerAddr struct{}

func (peerAddr) Network() string { return "ice" }
func (peerAddr) String() string  { return "ice-peer" }

// packetConn presents an ICE connection to QUIC as a net.PacketConn with a
// single, fixed peer address: ReadFrom says every datagram comes from
// peerAddr, WriteTo sends on the selected pair whatever address it is
// given. It does not close the ICE connection (its owner does). It is safe
// for concurrent use as far as the ICE connection is.
type packetConn struct {
	c net.Conn
}

func (p packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := p.c.Read(b)
	return n, peerAddr{}, err
}

func (p packetConn) WriteTo(b []byte, _ net.Addr) (int, error) { return p.c.Write(b) }
func (p packetConn) Close() error                              { return nil }
func (p packetConn) LocalAddr() net.Addr                       { return p.c.LocalAddr() }
func (p packetConn) SetDeadline(t time.Time) error             { return p.c.SetDeadline(t) }
func (p packetConn) SetReadDeadline(t time.Time) error         { return p.c.SetReadDeadline(t) }
func (p packetConn) SetWriteDeadline(t time.Time) error        { return p.c.SetWriteDeadline(t) }

// SetReadBuffer and SetWriteBuffer accept and ignore quic-go's request for
// larger socket buffers: the sockets are the ICE agent's, and there is
// no one socket under a Conn to resize. Having them keeps quic-go from
// logging its "not a *net.UDPConn" receive-buffer warning, deliberately.
func (p packetConn) SetReadBuffer(int) error  { return nil }
func (p packetConn) SetWriteBuffer(int) error { return nil }

// identity is an ephemeral self-signed certificate and its fingerprint.
type identity struct {
	cert        tls.Certificate
	fingerprint string // "sha-256 AB:CD:..." as in RFC 8122, Section 5
}

// newIdentity makes an ECDSA P-256 key and a self-signed certificate valid
// for a day.
func newIdentity() (*identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("peer: certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("peer: certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "icebreaker peer"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("peer: certificate: %w", err)
	}
	return &identity{
		cert:        tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		fingerprint: fingerprintOf(der),
	}, nil
}

// fingerprintOf formats the SHA-256 of a DER certificate like RFC 8122,
// Section 5: "sha-256 " and upper-case hex pairs joined by colons.
func fingerprintOf(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	b.WriteString("sha-256 ")
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// parseFingerprint returns the 32 bytes of a "sha-256 AB:CD:..."
// fingerprint.
func parseFingerprint(s string) ([]byte, error) {
	v, ok := strings.CutPrefix(s, "sha-256 ")
	if !ok {
		return nil, fmt.Errorf("peer: fingerprint %.40q: not sha-256", s)
	}
	b, err := hex.DecodeString(strings.ReplaceAll(v, ":", ""))
	if err != nil || len(b) != sha256.Size || len(v) != 3*sha256.Size-1 {
		return nil, fmt.Errorf("peer: fingerprint %.120q: want 32 colon-separated hex pairs", s)
	}
	return b, nil
}

// errFingerprint is wrapped by the handshake error when the peer's
// certificate is not the one its hello named.
var errFingerprint = errors.New("peer: the peer's certificate does not match the fingerprint it sent through the wormhole")

// tlsConfig returns the TLS configuration of one side: it presents id and
// accepts exactly one peer certificate, the one whose SHA-256 is want. The
// chain is not verified (there is no CA): the fingerprint, sealed with the
// wormhole key, is the trust anchor.
func tlsConfig(id *identity, want []byte, server bool) *tls.Config {
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) != 1 {
			return fmt.Errorf("%w: %d certificates", errFingerprint, len(raw))
		}
		sum := sha256.Sum256(raw[0])
		if !bytes.Equal(sum[:], want) {
			return errFingerprint
		}
		return nil
	}
	c := &tls.Config{
		Certificates:          []tls.Certificate{id.cert},
		NextProtos:            []string{ALPN},
		MinVersion:            tls.VersionTLS13,
		InsecureSkipVerify:    true, // replaced by verify: the fingerprint, not a CA
		VerifyPeerCertificate: verify,
		ServerName:            "icebreaker-peer",
	}
	if server {
		c.ClientAuth = tls.RequireAnyClientCert
	}
	return c
}
