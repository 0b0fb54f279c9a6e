// Package ratelog writes log lines that a remote party can cause (failed
// authentication, refused requests, exhausted quotas) at most once per
// source and reason per interval, with the number of lines suppressed in
// between, so that an attack leaves a trace without flooding the log.
//
// Sources are keyed as internal/iplimit keys them: an IPv4 address, or an
// IPv6 /64. The table of keys is bounded; when it is full of recent keys,
// the lines of new keys are counted (Stats.Dropped) instead of written.
package ratelog

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/iplimit"
)

// Defaults for the zero values of Config.
const (
	DefaultInterval = 10 * time.Second
	DefaultMaxKeys  = 4096
)

// Config configures a Logger. Its zero value logs nothing (nil Logger)
// with the defaults.
type Config struct {
	// Logger receives the lines; nil is silent.
	Logger *slog.Logger
	// Level of the lines; the zero value is slog.LevelInfo.
	Level slog.Level
	// Interval is the shortest time between two lines of one source and
	// reason. 0 means DefaultInterval.
	Interval time.Duration
	// MaxKeys bounds the (source, reason) pairs remembered. 0 means
	// DefaultMaxKeys.
	MaxKeys int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Logger is a rate-limited logger. It is safe for concurrent use; a nil
// *Logger logs nothing. Create it with New.
type Logger struct {
	cfg Config

	mu      sync.Mutex
	keys    map[key]*entry
	dropped uint64 // lines neither written nor counted against a key
	written uint64
	supp    uint64
}

type key struct {
	src    netip.Prefix
	reason string
}

type entry struct {
	last       time.Time // when a line was last written
	suppressed uint64    // lines suppressed since
}

// New returns a Logger for cfg.
func New(cfg Config) *Logger {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Logger{cfg: cfg, keys: make(map[key]*entry)}
}

// Log writes msg with attrs, the source address and the reason, unless a
// line of the same source and reason was written less than an interval
// ago; then it only counts it, and the next line written for the pair
// carries that count as "suppressed".
func (l *Logger) Log(src netip.Addr, reason, msg string, attrs ...slog.Attr) {
	if l == nil || l.cfg.Logger == nil || !l.cfg.Logger.Enabled(context.Background(), l.cfg.Level) {
		return
	}
	k := key{iplimit.Key(src, iplimit.DefaultIPv6Prefix), reason}
	now := l.cfg.Now()
	l.mu.Lock()
	e := l.keys[k]
	if e == nil {
		if len(l.keys) >= l.cfg.MaxKeys && !l.pruneLocked(now) {
			l.dropped++
			l.mu.Unlock()
			return
		}
		e = &entry{}
		l.keys[k] = e
	} else if now.Sub(e.last) < l.cfg.Interval {
		e.suppressed++
		l.supp++
		l.mu.Unlock()
		return
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	l.written++
	l.mu.Unlock()
	all := make([]slog.Attr, 0, len(attrs)+3)
	all = append(all, slog.String("reason", reason), slog.String("source", src.String()))
	all = append(all, attrs...)
	if n > 0 {
		all = append(all, slog.Uint64("suppressed", n))
	}
	l.cfg.Logger.LogAttrs(context.Background(), l.cfg.Level, msg, all...)
}

// pruneLocked forgets the pairs whose interval has passed and that
// suppressed nothing since their last line; it reports whether room was
// made.
func (l *Logger) pruneLocked(now time.Time) bool {
	for k, e := range l.keys {
		if now.Sub(e.last) >= l.cfg.Interval && e.suppressed == 0 {
			delete(l.keys, k)
		}
	}
	return len(l.keys) < l.cfg.MaxKeys
}

// Stats counts the lines a Logger handled.
type Stats struct {
	Written    uint64 // lines written
	Suppressed uint64 // lines counted against a pair instead of written
	Dropped    uint64 // lines of new pairs while the table was full
}

// Stats returns the counts so far.
func (l *Logger) Stats() Stats {
	if l == nil {
		return Stats{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Written: l.written, Suppressed: l.supp, Dropped: l.dropped}
}
