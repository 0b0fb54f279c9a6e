// Package portmap asks the home router (the default gateway) to forward an
// external UDP port to a local socket, through the three protocols routers
// speak, so that a peer behind an address-and-port-dependent ("symmetric")
// NAT can still be reached directly:
//
//   - PCP, the Port Control Protocol (RFC 6887, https://www.rfc-editor.org/rfc/rfc6887):
//     MAP requests with a nonce (Section 11.1), renewal (Section 11.2.1) and
//     deletion by a zero lifetime (Section 15), result codes as *PCPError
//     (Section 7.4). The wire format is in pcp.go and written here.
//   - NAT-PMP (RFC 6886, https://www.rfc-editor.org/rfc/rfc6886), through
//     github.com/jackpal/go-nat-pmp.
//   - UPnP IGD (WANIPConnection v1 and v2): an SSDP M-SEARCH sent to the
//     gateway alone (unicast, UPnP Device Architecture 1.1, Section 1.3.2),
//     then AddPortMapping, GetExternalIPAddress and DeletePortMapping over
//     SOAP through github.com/huin/goupnp.
//
// The gateway is the next hop of the kernel's IPv4 default route (read from
// /proc/net/route on Linux). Every request is bounded by Config.Timeout. A
// [Mapping] renews itself at half its lifetime (RFC 6887, Section 11.2.1;
// RFC 6886, Section 3.3) until Close, which deletes it on the router.
//
// Only IPv4 mappings are requested: PCP's IPv6 firewall control and
// NAT-PMP's lack of IPv6 are out of scope.
package portmap
