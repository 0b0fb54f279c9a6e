package portmap

import (
	"net/netip"
	"strings"
	"testing"
)

var gw = netip.MustParseAddr("10.9.1.1")

// An SSDP answer as miniupnpd 2.3.1 sends it.
const ssdpMiniupnpd = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n" +
	"USN: uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nEXT:\r\n" +
	"SERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: http://10.9.1.1:36981/rootDesc.xml\r\nOPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n\r\n"

func TestParseSSDPResponse(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
	}{
		{"miniupnpd", ssdpMiniupnpd, "http://10.9.1.1:36981/rootDesc.xml"},
		{"other host", strings.Replace(ssdpMiniupnpd, "10.9.1.1:", "10.9.1.7:", 1), ""},
		{"https", strings.Replace(ssdpMiniupnpd, "http://", "https://", 1), ""},
		{"name", strings.Replace(ssdpMiniupnpd, "10.9.1.1:", "router.lan:", 1), ""},
		{"status", strings.Replace(ssdpMiniupnpd, "200 OK", "404 Not Found", 1), ""},
		{"not http", "NOTIFY * HTTP/1.1\r\n\r\n", ""},
		{"empty", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			loc, err := parseSSDPResponse([]byte(c.in), gw)
			if c.want == "" {
				if err == nil {
					t.Fatalf("accepted %v", loc)
				}
				return
			}
			if err != nil || loc.String() != c.want {
				t.Fatalf("got %v, %v", loc, err)
			}
		})
	}
	if r := string(ssdpRequest(gw)); !strings.HasPrefix(r, "M-SEARCH * HTTP/1.1\r\nHOST: 10.9.1.1:1900\r\n") || !strings.HasSuffix(r, "\r\n\r\n") {
		t.Fatalf("request %q", r)
	}
}

// FuzzParseSSDPResponse: no panic, and an accepted LOCATION is always an
// http URL on the gateway.
func FuzzParseSSDPResponse(f *testing.F) {
	f.Add([]byte(ssdpMiniupnpd))
	f.Add([]byte("HTTP/1.1 200 OK\r\nLocation: http://[::ffff:10.9.1.1]:1/x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		loc, err := parseSSDPResponse(b, gw)
		if err != nil {
			return
		}
		if h, e := netip.ParseAddr(loc.Hostname()); loc.Scheme != "http" || e != nil || h.Unmap() != gw {
			t.Fatalf("accepted %v", loc)
		}
	})
}
