package stunuri_test

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/icebreaker-net/icebreaker/stun/stunuri"
)

func ExampleParse() {
	for _, s := range []string{
		"stun:stun.example.org",
		"turns:turn.example.org?transport=tcp",
		"turn:[2001:db8::1]:3479?transport=udp",
	} {
		u, err := stunuri.Parse(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(u.Scheme, u.HostPort(), u.Network(), "secure:", u.Secure())
	}
	// A list of servers may skip what it cannot use and keep the rest.
	_, err := stunuri.Parse("turns:turn.example.org?transport=udp")
	fmt.Println(errors.Is(err, stunuri.ErrUnsupported))
	// Output:
	// stun stun.example.org:3478 udp secure: false
	// turns turn.example.org:5349 tcp secure: true
	// turn [2001:db8::1]:3479 udp secure: false
	// true
}

func ExampleURI() {
	// A struct literal, with the port and transport left to their defaults.
	u := stunuri.URI{Scheme: stunuri.TURN, Host: "turn.example.org", Transport: stunuri.TCP}
	fmt.Println(u)
	// From a listener's address.
	v := stunuri.FromAddrPort(stunuri.TURN, netip.MustParseAddrPort("[::1]:3478"))
	fmt.Println(v, v.AddrPort())
	// Output:
	// turn:turn.example.org?transport=tcp
	// turn:[::1]:3478 [::1]:3478
}
