package config

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/netx"
)

// Admin configures the admin endpoint: plain HTTP for `icebreaker status`,
// `sessions`, `reload` and `drain`, with /healthz and /readyz.
type Admin struct {
	// Listen is a Unix socket path (created with mode 0600) or a loopback
	// "IP:PORT"; "" means admin.sock in the directory of the default
	// user store; "none" turns the endpoint off.
	Listen string `yaml:"listen"`
}

// NoAdmin is the Admin.Listen value that turns the endpoint off.
const NoAdmin = "none"

// Drain configures how the server stops: on SIGTERM (or `icebreaker
// drain`) it refuses new allocations and waits for the existing ones.
type Drain struct {
	// Timeout is how long SIGTERM waits for allocations to end; 0 stops
	// at once. `icebreaker drain` waits this long too, or 10 minutes
	// when it is 0.
	Timeout time.Duration `yaml:"timeout"`
	// AlternateServer is the "IP:PORT" that new Allocates are sent to
	// (300 Try Alternate) while draining; "" refuses them with 508.
	AlternateServer string `yaml:"alternate_server"`
}

// AdminAddr returns the loopback address of the admin endpoint, or the
// zero AddrPort when it is a Unix socket (or off); call after Validate.
func (a Admin) AdminAddr() netip.AddrPort {
	ap, err := netip.ParseAddrPort(a.Listen)
	if err != nil {
		return netip.AddrPort{}
	}
	return ap
}

// AlternateAddr returns the parsed AlternateServer, or the zero AddrPort;
// call after Validate.
func (d Drain) AlternateAddr() netip.AddrPort {
	ap, _ := netip.ParseAddrPort(d.AlternateServer)
	return netx.Unmap(ap)
}

func (c Config) validateOps() *Error {
	s := c.Admin.Listen
	switch {
	case s == "" || s == NoAdmin:
	case strings.ContainsAny(s, "/") || filepath.Ext(s) == ".sock":
		if len(s) > 100 {
			return keyErr("admin.listen", "socket path %q is too long for a Unix socket (at most 100 bytes)", s)
		}
	default:
		ap, err := netip.ParseAddrPort(s)
		switch {
		case err != nil:
			return keyErr("admin.listen", "%q is neither a socket path (with a /) nor IP:PORT", s)
		case !ap.Addr().IsLoopback():
			return keyErr("admin.listen", "%v is not a loopback address: the endpoint has no authentication, so it listens on loopback or a Unix socket only", ap.Addr())
		case ap.Port() == 0:
			return keyErr("admin.listen", "port 0 would change at every start: choose a fixed port")
		}
	}
	if c.Drain.Timeout < 0 {
		return keyErr("drain.timeout", "%v is negative", c.Drain.Timeout)
	}
	if a := c.Drain.AlternateServer; a != "" {
		ap, err := netip.ParseAddrPort(a)
		if err != nil || ap.Port() == 0 || ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() {
			return keyErr("drain.alternate_server", "%q is not a unicast IP:PORT", a)
		}
	}
	return nil
}

// ReloadChanges lists the keys whose change between c and next a reload
// cannot apply, because they belong to sockets or state made at start:
// they need a restart. A reload applies the users, the REST secrets, the
// policy, the quotas (but turn.quotas.error_rate_per_ip), the log level,
// the TLS certificate files and the drain settings; every other key is compared, section by section (and
// field by field inside a section), so a key added later is reported too.
func (c Config) ReloadChanges(next Config) []string {
	blank := func(x Config) Config {
		x.TURN.Users, x.TURN.RESTSecrets = nil, nil
		// error_rate_per_ip sizes a limiter made at start;
		// overflow_alternates is copied into the TURN server at start.
		x.TURN.Policy = Policy{}
		x.TURN.Quotas = Quotas{ErrorRatePerIP: x.TURN.Quotas.ErrorRatePerIP, OverflowAlternates: x.TURN.Quotas.OverflowAlternates}
		x.Log.Level = ""
		x.TLS.Cert, x.TLS.Key = "", ""
		x.Drain = Drain{}
		return x
	}
	a, b := reflect.ValueOf(blank(c)), reflect.ValueOf(blank(next))
	var keys []string
	t := a.Type()
	for i := range t.NumField() {
		name := yamlName(t.Field(i))
		fa, fb := a.Field(i), b.Field(i)
		if reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			continue
		}
		if fa.Kind() != reflect.Struct {
			keys = append(keys, name)
			continue
		}
		for j := range fa.NumField() {
			if !reflect.DeepEqual(fa.Field(j).Interface(), fb.Field(j).Interface()) {
				keys = append(keys, name+"."+yamlName(fa.Type().Field(j)))
			}
		}
	}
	// TLS on or off changes the listeners too.
	if c.TLS.Enabled() != next.TLS.Enabled() {
		keys = append(keys, "tls.cert")
	}
	return keys
}

// yamlName is the key of a struct field.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}
