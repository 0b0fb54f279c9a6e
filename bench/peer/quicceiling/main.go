// Command quicceiling is the ceiling of bench/peer: one file over quic-go
// (RFC 9000) on a plain UDP socket, with the QUIC configuration that
// icebreaker's peers use over ICE (peer.QUICConfig: 1200-byte packets, no
// path-MTU discovery). quic-go gets a *net.UDPConn here, so it may batch
// and segment (GSO) as it does on any UDP socket; set QUIC_GO_DISABLE_GSO=true
// to see what that is worth.
//
// The receiver (-role server) listens on -local, writes the stream it
// accepts into -out and answers with the SHA-256 of what it got; the
// sender (-role client) dials -peer from -local, sends -file on one
// stream and checks the answer against its own SHA-256 of what it sent.
// Both hash, as icebreaker's send and receive do (the end-to-end check of
// issue 12), so that the ceiling does the same work but for ICE. Before QUIC starts, both punch: each sends a one-byte datagram
// (0x00, which QUIC drops: its fixed bit is clear) to -peer every 20 ms until
// one arrives from there, so that the NAT lab's endpoint-independent NATs,
// which keep the source port, let the handshake through.
//
// It talks only to loopback or to the NAT lab's wan (203.0.113.0/24,
// TEST-NET-3 of RFC 5737, which exists only inside the lab's namespaces),
// and every wait is bounded by -timeout.
//
//	quicceiling -role server -local 127.0.0.1:P1 -peer 127.0.0.1:P2 -out FILE
//	quicceiling -role client -local 127.0.0.1:P2 -peer 127.0.0.1:P1 -file FILE
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/icebreaker-net/icebreaker/peer"
)

// labNet is the NAT lab's wan (internal/natlab), TEST-NET-3.
var labNet = netip.MustParsePrefix("203.0.113.0/24")

const alpn = "icebreaker-quicceiling"

func main() {
	role := flag.String("role", "", "server (receives) or client (sends)")
	local := flag.String("local", "", "local `IP:PORT` to bind")
	peerFlag := flag.String("peer", "", "the other side's `IP:PORT` (its public address in the lab)")
	file := flag.String("file", "", "client: the `FILE` to send")
	out := flag.String("out", "", "server: where to write the file")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if err := run(*role, *local, *peerFlag, *file, *out, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "quicceiling:", err)
		os.Exit(1)
	}
}

// addr parses an IP:PORT that must be loopback or in the lab's wan.
func addr(name, s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ap, fmt.Errorf("-%s %q: want IP:PORT: %w", name, s, err)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if name == "peer" && !ap.Addr().IsLoopback() && !labNet.Contains(ap.Addr()) {
		return ap, fmt.Errorf("-peer %s: only loopback or the NAT lab's %s", ap, labNet)
	}
	return ap, nil
}

func run(role, localS, peerS, file, out string, timeout time.Duration) error {
	if role != "server" && role != "client" {
		return errors.New("-role server or -role client")
	}
	if (role == "client") == (file == "") || (role == "server") == (out == "") {
		return errors.New("the client needs -file, the server -out")
	}
	local, err := addr("local", localS)
	if err != nil {
		return err
	}
	remote, err := addr("peer", peerS)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	uc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(local))
	if err != nil {
		return err
	}
	defer uc.Close()
	if err := punch(ctx, uc, remote); err != nil {
		return err
	}
	tr := &quic.Transport{Conn: uc}
	defer tr.Close()
	tc, err := tlsConfig()
	if err != nil {
		return err
	}
	if role == "server" {
		return receive(ctx, tr, tc, out)
	}
	return send(ctx, tr, tc, net.UDPAddrFromAddrPort(remote), file)
}

// punch sends one-byte datagrams to remote every 20 ms until one comes from
// there, then three more, so that both NATs have a mapping and let the
// other side in.
func punch(ctx context.Context, uc *net.UDPConn, remote netip.AddrPort) error {
	buf := make([]byte, 1500)
	for ctx.Err() == nil {
		if _, err := uc.WriteToUDPAddrPort([]byte{0}, remote); err != nil {
			return fmt.Errorf("punching: %w", err)
		}
		_ = uc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, from, err := uc.ReadFromUDPAddrPort(buf)
		if err == nil && n == 1 && from.Addr().Unmap() == remote.Addr() {
			for range 3 {
				_, _ = uc.WriteToUDPAddrPort([]byte{0}, remote)
			}
			return uc.SetReadDeadline(time.Time{})
		}
	}
	return fmt.Errorf("punching: nothing from %s: %w", remote, ctx.Err())
}

func receive(ctx context.Context, tr *quic.Transport, tc *tls.Config, out string) error {
	ln, err := tr.Listen(tc, peer.QUICConfig())
	if err != nil {
		return err
	}
	defer ln.Close()
	c, err := ln.Accept(ctx)
	if err != nil {
		return err
	}
	s, err := c.AcceptStream(ctx)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if _, err := s.Write(h.Sum(nil)); err != nil {
		return err
	}
	s.Close()
	// The sender closes once it has the byte; wait for that (bounded).
	select {
	case <-c.Context().Done():
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
	}
	fmt.Printf("received %d bytes\n", n)
	return nil
}

func send(ctx context.Context, tr *quic.Transport, tc *tls.Config, to net.Addr, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := tr.Dial(ctx, to, tc, peer.QUICConfig())
	if err != nil {
		return err
	}
	defer c.CloseWithError(0, "")
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(s, h), f)
	if err != nil {
		return err
	}
	s.Close()
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(s, got); err != nil {
		return fmt.Errorf("waiting for the receiver: %w", err)
	}
	if !bytes.Equal(got, h.Sum(nil)) {
		return errors.New("the receiver's SHA-256 differs")
	}
	fmt.Printf("sent %d bytes\n", n)
	return nil
}

// tlsConfig is a throw-away self-signed certificate that both sides accept
// without checking: the ceiling measures QUIC, not authentication.
func tlsConfig() (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "quicceiling"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates:       []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos:         []string{alpn},
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // a benchmark between two of our own processes
		ServerName:         "quicceiling",
	}, nil
}
