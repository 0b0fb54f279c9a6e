package turnserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn/turnauth"
)

// TestTLSClient: a client on TLS allocates, binds a channel and relays
// padded ChannelData both ways; closing the connection deletes the
// allocation.
func TestTLSClient(t *testing.T) {
	before := runtime.NumGoroutine()
	srvTLS, cliTLS := selfSignedTLS(t)
	auth, _ := turnauth.New(turnauth.Config{Realm: realm, Users: users})
	ts, err := New(Config{Auth: auth, Policy: allowAll, RelayIPv4: loop4})
	if err != nil {
		t.Fatal(err)
	}
	ss, err := stunserver.Listen(stunserver.Config{TLS: netip.AddrPortFrom(loop4, 0), TLSConfig: srvTLS, Handler: ts})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ss.Serve(context.Background()) }()
	defer func() {
		ss.Close()
		<-served
		ts.Close()
		checkGoroutines(t, before)
	}()
	conn, err := tls.Dial("tcp", ss.Addrs()[0].Addr.String(), cliTLS)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, c: conn, stream: true, user: "alice", pass: users["alice"]}
	relayed := c.allocate()
	p := newPeer(t, loop4)
	c.bind(0x4000, p.addr())
	c.sendChannel(0x4000, []byte("odd"))
	if got, _ := p.recv(); string(got) != "odd" {
		t.Fatalf("peer got %q", got)
	}
	p.sendTo(relayed, []byte("seven b"))
	if r := c.recv(); r.channel != 0x4000 || string(r.data) != "seven b" {
		t.Fatalf("client got %+v", r)
	}
	conn.Close()
	waitFor(t, "the allocation to go", func() bool { return ts.Stats().Allocations == 0 })
}

func selfSignedTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "icebreaker test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return server, client
}
