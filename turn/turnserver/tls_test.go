package turnserver

import (
	"context"
	"crypto/tls"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
	"net/netip"
	"runtime"
	"testing"

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

// selfSignedTLS returns a server config with a fresh self-signed
// certificate for 127.0.0.1, and a client config that trusts it.
func selfSignedTLS(t testing.TB) (server, client *tls.Config) {
	c := testutil.SelfSignedCert(t)
	return c.Server, c.Client
}
