package mailbox

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxMessageSize  = 64 << 10
	DefaultMaxMessages     = 1000
	DefaultMaxMailboxBytes = 1 << 20
	DefaultMaxMailboxes    = 100000
	DefaultMailboxesPerIP  = 32
	DefaultConnsPerIP      = 64
	DefaultRate            = 50
	DefaultBurst           = 200
	DefaultPruneAfter      = 11 * time.Minute
	DefaultFlushInterval   = 10 * time.Millisecond
	DefaultWriteTimeout    = 10 * time.Second
	maxPendingWrites       = 50000   // journal records before commands wait for the writer
	frameLimitFactor       = 4       // frames beyond this many MaxMessageSize close the connection
	keepReadBuffer         = 4 << 10 // a connection's read buffer beyond this is dropped after use
	queueSlack             = 64 << 10
	pruneEveryDivisor      = 10
	minPruneEvery          = time.Second
	mailboxIDBytes         = 8
)

// Request is what an extension command (Config.Commands) learns about the
// client that sent it. Raw is the whole JSON message; it is only valid
// during the call.
type Request struct {
	Type   string
	Raw    json.RawMessage
	AppID  string
	Side   string
	Token  string     // the "token" field, "" when absent
	Client netip.Addr // the client's address (from Config.ClientIPHeader behind a proxy)
	Host   string     // the host the client reached the server by (HTTP Host, without port)
	TLS    bool       // whether the client came over wss://
}

// CommandFunc answers an extension command after its ack. It returns the
// reply, which must marshal to a JSON object with a "type"; or an error,
// whose text the client receives in an error message. It must be safe for
// concurrent use.
type CommandFunc func(ctx context.Context, r Request) (reply any, err error)

// Config configures a Server. Its zero value is a usable in-memory server
// with the default limits: each limit of 0 means its default.
type Config struct {
	// DBPath is the SQLite database that keeps nameplates, mailboxes and
	// messages across restarts. "" keeps them in memory only.
	DBPath string
	// MOTD is the message of the day in the welcome; "" for none.
	MOTD string
	// Disabled, when not empty, is the error every welcome carries: the
	// server accepts no command and closes each connection.
	Disabled string

	MaxMessageSize  int // bytes of one client message (the JSON text); default 64 KiB
	MaxMessages     int // messages stored per mailbox; default 1000
	MaxMailboxBytes int // bytes of message bodies stored per mailbox; default 1 MiB
	MaxMailboxes    int // mailboxes on the whole server; default 100000
	MailboxesPerIP  int // live mailboxes one client address created; default 32
	ConnsPerIP      int // WebSocket connections per client address; default 64
	// Rate is the commands per second one address may send on average
	// (default 50), Burst how many at once (default 200).
	Rate  float64
	Burst int
	// IPv6Prefix is the prefix length IPv6 clients are counted by; 0
	// means /64.
	IPv6Prefix int
	// ClientIPHeader names the HTTP header a trusted reverse proxy puts
	// the client's address in (e.g. "X-Forwarded-For", whose last entry is
	// used). "" uses the TCP peer address; set it only behind a proxy that
	// always sets it, or clients can claim any address.
	ClientIPHeader string

	// PruneAfter is how long a mailbox lives without any listener before
	// it is deleted with its nameplate; default 11 minutes.
	PruneAfter time.Duration
	// FlushInterval is how often pending changes are written to the
	// database, in one transaction; default 10 ms.
	FlushInterval time.Duration
	// WriteTimeout bounds one write to a client; a client that does not
	// read for that long is disconnected. Default 10 s.
	WriteTimeout time.Duration

	// Commands are extra commands, by type, answered after bind.
	Commands map[string]CommandFunc
	// HTTP, when not nil, answers every HTTP request on the listeners
	// whose path is not Path (`icebreaker serve` puts its ICE test page
	// there). Each request costs its client one command of Rate and Burst,
	// the per-address limiter of the WebSocket commands, and is answered
	// 429 without reaching HTTP when none is left. nil answers 404.
	HTTP http.Handler
	// Logger receives the server's log; nil means silent.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	for _, v := range []struct {
		name string
		v    int
	}{{"MaxMessageSize", c.MaxMessageSize}, {"MaxMessages", c.MaxMessages}, {"MaxMailboxBytes", c.MaxMailboxBytes},
		{"MaxMailboxes", c.MaxMailboxes}, {"MailboxesPerIP", c.MailboxesPerIP}, {"ConnsPerIP", c.ConnsPerIP}, {"Burst", c.Burst}} {
		if v.v < 0 {
			return fmt.Errorf("mailbox: %s %d is negative", v.name, v.v)
		}
	}
	switch {
	case c.MaxMessageSize > 16<<20:
		return fmt.Errorf("mailbox: MaxMessageSize %d is above 16 MiB", c.MaxMessageSize)
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("mailbox: Rate %v is not a finite, non-negative number", c.Rate)
	case c.IPv6Prefix < 0 || c.IPv6Prefix > 128:
		return fmt.Errorf("mailbox: IPv6Prefix %d is not between 1 and 128", c.IPv6Prefix)
	case c.PruneAfter < 0 || c.FlushInterval < 0 || c.WriteTimeout < 0:
		return fmt.Errorf("mailbox: a negative duration")
	}
	for typ, f := range c.Commands {
		if _, builtin := handlers[typ]; builtin || f == nil {
			return fmt.Errorf("mailbox: command %q is built in or has no function", typ)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	def(&c.MaxMessageSize, DefaultMaxMessageSize)
	def(&c.MaxMessages, DefaultMaxMessages)
	def(&c.MaxMailboxBytes, DefaultMaxMailboxBytes)
	def(&c.MaxMailboxes, DefaultMaxMailboxes)
	def(&c.MailboxesPerIP, DefaultMailboxesPerIP)
	def(&c.ConnsPerIP, DefaultConnsPerIP)
	def(&c.Burst, DefaultBurst)
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.PruneAfter == 0 {
		c.PruneAfter = DefaultPruneAfter
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
