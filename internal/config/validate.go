package config

import (
	"net/netip"
	"unicode/utf8"
)

// Validate reports the first invalid setting as an *Error naming its key.
// Parse and Load call it; call it again after changing a Config (for
// example from command-line flags).
func (c Config) Validate() error {
	if err := c.Log.validate(); err != nil {
		return err
	}
	return c.STUN.validate()
}

func (l Log) validate() error {
	if _, ok := parseLevel(l.Level); !ok {
		return keyErr("log.level", "%q is not a level (debug, info, warn or error)", l.Level)
	}
	if l.Format != "text" && l.Format != "json" {
		return keyErr("log.format", "%q is not a format (text or json)", l.Format)
	}
	return nil
}

// maxUDPSockets bounds udp_sockets: far above any core count, low enough
// that a typo cannot exhaust file descriptors.
const maxUDPSockets = 1024

func (s STUN) validate() error {
	listen, err := netip.ParseAddr(s.Listen)
	if err != nil {
		return keyErr("stun.listen", "%q is not an IP address", s.Listen)
	}
	for _, p := range []struct {
		key  string
		port int
	}{{"stun.port", s.Port}, {"stun.tls_port", s.TLSPort}, {"stun.alternate_port", s.AlternatePort}} {
		if p.port < 0 || p.port > 65535 {
			return keyErr(p.key, "%d is not a port number (0-65535)", p.port)
		}
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		if s.TLSKey == "" {
			return keyErr("stun.tls_key", "must be set when stun.tls_cert is (TLS needs both)")
		}
		return keyErr("stun.tls_cert", "must be set when stun.tls_key is (TLS needs both)")
	}
	if !s.UDP && !s.TCP && !s.TLS() {
		return keyErr("stun.udp", "no transport enabled: stun.udp and stun.tcp are false and TLS has no certificate")
	}
	if s.TCP && s.TLS() && s.Port != 0 && s.Port == s.TLSPort {
		return keyErr("stun.tls_port", "%d is also stun.port, where STUN over TCP listens", s.TLSPort)
	}
	if err := s.validateAlternate(listen); err != nil {
		return err
	}
	if s.Software != "" {
		// RFC 8489, Section 14.14: fewer than 128 characters of UTF-8.
		if !utf8.ValidString(s.Software) {
			return keyErr("stun.software", "is not valid UTF-8")
		}
		if n := utf8.RuneCountInString(s.Software); n >= 128 {
			return keyErr("stun.software", "is %d characters long; RFC 8489 allows fewer than 128", n)
		}
	}
	if s.UDPSockets < 0 || s.UDPSockets > maxUDPSockets {
		return keyErr("stun.udp_sockets", "%d is out of range (0-%d; 0 = one per CPU core)", s.UDPSockets, maxUDPSockets)
	}
	if s.TCPIdleTimeout <= 0 {
		return keyErr("stun.tcp_idle_timeout", "%v must be positive", s.TCPIdleTimeout)
	}
	if s.MaxTCPConns < 1 {
		return keyErr("stun.max_tcp_conns", "%d must be at least 1", s.MaxTCPConns)
	}
	return nil
}

// validateAlternate checks the RFC 5780 settings: a second IP of the same
// family as a specific listen address, served over UDP.
func (s STUN) validateAlternate(listen netip.Addr) error {
	if s.AlternateIP == "" {
		if s.AlternatePort != 0 {
			return keyErr("stun.alternate_port", "is set but stun.alternate_ip is not (RFC 5780 needs both)")
		}
		return nil
	}
	alt, err := netip.ParseAddr(s.AlternateIP)
	switch {
	case err != nil:
		return keyErr("stun.alternate_ip", "%q is not an IP address", s.AlternateIP)
	case alt.IsUnspecified():
		return keyErr("stun.alternate_ip", "%q is not a specific address", s.AlternateIP)
	case listen.IsUnspecified():
		return keyErr("stun.alternate_ip", "requires stun.listen to be a specific IP address, not %q", s.Listen)
	case alt.Unmap().Is4() != listen.Unmap().Is4():
		return keyErr("stun.alternate_ip", "%s and stun.listen %s are not of the same IP family", alt, listen)
	case alt.Unmap() == listen.Unmap():
		return keyErr("stun.alternate_ip", "%s is the same as stun.listen", alt)
	case !s.UDP:
		return keyErr("stun.alternate_ip", "RFC 5780 works over UDP, but stun.udp is false")
	}
	if s.AlternatePort != 0 && s.AlternatePort == s.Port {
		return keyErr("stun.alternate_port", "%d is the same as stun.port", s.AlternatePort)
	}
	if s.AlternatePort == 0 && s.Port == 65535 {
		return keyErr("stun.alternate_port", "must be set: stun.port is 65535, so port+1 does not exist")
	}
	return nil
}
