package mailbox

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/iplimit"
)

// Path is the URL path of the WebSocket endpoint: clients use
// ws://HOST:4000/v1.
const Path = "/v1"

// Server is a mailbox server. Create it with New, run it with Serve, stop
// it by cancelling Serve's context, and Close it. Its methods are safe for
// concurrent use.
type Server struct {
	cfg       Config
	connLimit *iplimit.Limiter // connections and command rate per address
	mbLimit   *iplimit.Limiter // live mailboxes per creating address
	j         *journal         // nil without a database
	stats     counters

	mu         sync.Mutex
	apps       map[string]*app // guarded by mu
	nMailboxes int             // guarded by mu
	nMessages  int             // guarded by mu

	connMu  sync.Mutex
	conns   sync.WaitGroup // the handlers of open connections
	stopped bool           // guarded by connMu: no new connection

	runMu     sync.Mutex
	running   bool
	cancel    context.CancelFunc // guarded by runMu: stops Serve
	done      chan struct{}      // guarded by runMu: closed when Serve returns
	closeOnce sync.Once
	closeErr  error
}

// New returns a server for cfg, with the state stored in cfg.DBPath
// loaded. It starts nothing.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, apps: map[string]*app{}}
	var err error
	if s.connLimit, err = iplimit.New(iplimit.Config{MaxConns: cfg.ConnsPerIP, Rate: cfg.Rate, Burst: cfg.Burst, IPv6Prefix: cfg.IPv6Prefix}); err != nil {
		return nil, err
	}
	if s.mbLimit, err = iplimit.New(iplimit.Config{MaxConns: cfg.MailboxesPerIP, IPv6Prefix: cfg.IPv6Prefix}); err != nil {
		return nil, err
	}
	if cfg.DBPath != "" {
		if s.j, err = openJournal(cfg.DBPath); err != nil {
			return nil, err
		}
		if err := s.load(cfg.Now()); err != nil {
			s.j.close()
			return nil, err
		}
		cfg.Logger.Info("rendezvous state loaded", "db", cfg.DBPath, "mailboxes", s.nMailboxes, "messages", s.nMessages)
	}
	return s, nil
}

// Serve accepts WebSocket connections at Path on every listener (plain
// or already wrapped in TLS) until ctx is done or Close is called, then
// closes the listeners and every connection, writes the pending state
// and returns. It may be called once.
func (s *Server) Serve(ctx context.Context, lns ...net.Listener) error {
	s.runMu.Lock()
	if s.running {
		s.runMu.Unlock()
		return errors.New("mailbox: Serve called twice")
	}
	s.running = true
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	defer close(s.done)
	cancel := s.cancel
	s.runMu.Unlock()
	defer cancel()

	var bg sync.WaitGroup
	bg.Go(func() {
		every(ctx, s.cfg.FlushInterval, func() {
			if err := s.j.flush(); err != nil {
				s.cfg.Logger.Error("rendezvous database write failed", "err", err)
			}
		})
	})
	bg.Go(func() { every(ctx, max(s.cfg.PruneAfter/pruneEveryDivisor, minPruneEvery), func() { s.Prune() }) })

	mux := http.NewServeMux()
	mux.HandleFunc(Path, s.serveWS)
	if s.cfg.HTTP != nil {
		mux.HandleFunc("/", s.serveHTTP)
	}
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          nil,
	}
	errs := make(chan error, len(lns))
	var lw sync.WaitGroup
	for _, ln := range lns {
		lw.Go(func() {
			if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				errs <- err
				cancel()
			}
		})
	}
	<-ctx.Done()
	hs.Close() // listeners and connections not yet upgraded
	lw.Wait()
	s.connMu.Lock()
	s.stopped = true
	s.connMu.Unlock()
	s.conns.Wait() // the upgraded ones end with ctx
	bg.Wait()
	err := s.j.flush()
	close(errs)
	for e := range errs {
		err = errors.Join(err, e)
	}
	return err
}

// every calls f every d until ctx is done: Serve writes the journal every
// FlushInterval and prunes every PruneAfter/10 (at most once a second).
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// Prune deletes the mailboxes that have had no listener for PruneAfter,
// with their nameplates, and the nameplates whose mailbox is gone, and
// returns how many mailboxes and such nameplates it deleted. Serve calls
// it periodically.
func (s *Server) Prune() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pruneLocked(s.cfg.Now())
}

// Close stops Serve if it runs, waits for it, and closes the database. It
// may be called more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.runMu.Lock()
		s.running = true // no Serve after Close
		cancel, done := s.cancel, s.done
		s.runMu.Unlock()
		if cancel != nil {
			cancel()
			<-done
		}
		s.closeErr = s.j.close()
	})
	return s.closeErr
}

// serveWS upgrades one connection and runs it until it ends or Serve
// stops.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	client, ok := s.clientAddr(r)
	if !ok {
		http.Error(w, "no client address in "+s.cfg.ClientIPHeader, http.StatusBadRequest)
		return
	}
	s.connMu.Lock()
	if s.stopped {
		s.connMu.Unlock()
		http.Error(w, "server stopping", http.StatusServiceUnavailable)
		return
	}
	s.conns.Add(1)
	s.connMu.Unlock()
	defer s.conns.Done()
	s.runConn(r.Context(), w, r, client)
}

// serveHTTP passes a request to Config.HTTP if its client has a command
// left in its rate.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	client, ok := s.clientAddr(r)
	if !ok {
		http.Error(w, "no client address in "+s.cfg.ClientIPHeader, http.StatusBadRequest)
		return
	}
	if !s.connLimit.Allow(client) {
		s.stats.rateLimited.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many requests from your address", http.StatusTooManyRequests)
		return
	}
	s.cfg.HTTP.ServeHTTP(w, r)
}

// clientAddr returns the client's address: the last entry of the
// configured header, or the TCP peer.
func (s *Server) clientAddr(r *http.Request) (netip.Addr, bool) {
	if h := s.cfg.ClientIPHeader; h != "" {
		v := r.Header.Values(h)
		if len(v) == 0 {
			return netip.Addr{}, false
		}
		last := v[len(v)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		last = strings.TrimSpace(last)
		if ap, err := netip.ParseAddrPort(last); err == nil {
			return ap.Addr().Unmap(), true
		}
		a, err := netip.ParseAddr(strings.Trim(last, "[]"))
		return a.Unmap(), err == nil
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// counters are the Stats that only grow.
type counters struct {
	accepted, refused, commands, errors, rateLimited, tooLarge, binary atomic.Uint64
	mailboxFull, mailboxesRefused, crowded, slow                       atomic.Uint64
	closed, rendezvous, pruned                                         atomic.Uint64
	happy, lonely, scary, errory, otherMood                            atomic.Uint64
	conns                                                              atomic.Int64
}

// Stats counts what a Server did. Counters only grow; the fields marked
// "now" are gauges.
type Stats struct {
	Connections      int    // WebSocket connections open now
	Accepted         uint64 // connections upgraded
	Refused          uint64 // connections turned away: per-address limit, disabled server
	Commands         uint64 // client messages handled
	Errors           uint64 // error messages sent
	RateLimited      uint64 // commands refused by the per-address rate
	TooLarge         uint64 // messages above MaxMessageSize
	Binary           uint64 // binary frames (the protocol is text)
	MailboxFull      uint64 // adds refused by MaxMessages or MaxMailboxBytes
	MailboxesRefused uint64 // mailboxes not created: MailboxesPerIP or MaxMailboxes
	Crowded          uint64 // a third side turned away
	SlowClients      uint64 // connections closed because the client did not read
	Nameplates       int    // now
	Mailboxes        int    // now
	Messages         int    // stored now
	Closed           uint64 // mailboxes deleted after every side closed
	Rendezvous       uint64 // of those, the ones two sides used
	Pruned           uint64 // abandoned mailboxes (with their nameplates) and orphan nameplates deleted
	// Close moods, one per side that closes: happy, lonely, scary (a
	// wrong code: the PAKE failed), errory, and anything else.
	Happy, Lonely, Scary, Errory, OtherMood uint64
	DBErrors                                uint64 // database transactions that failed
	// Limiter is the per-address limiter's own view (its refusals are
	// counted above too).
	Limiter iplimit.Stats
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	st := Stats{
		Connections: int(c.conns.Load()), Accepted: c.accepted.Load(), Refused: c.refused.Load(),
		Commands: c.commands.Load(), Errors: c.errors.Load(), RateLimited: c.rateLimited.Load(),
		TooLarge: c.tooLarge.Load(), Binary: c.binary.Load(), MailboxFull: c.mailboxFull.Load(),
		MailboxesRefused: c.mailboxesRefused.Load(), Crowded: c.crowded.Load(), SlowClients: c.slow.Load(),
		Closed: c.closed.Load(), Rendezvous: c.rendezvous.Load(), Pruned: c.pruned.Load(),
		Happy: c.happy.Load(), Lonely: c.lonely.Load(), Scary: c.scary.Load(), Errory: c.errory.Load(),
		OtherMood: c.otherMood.Load(), DBErrors: s.j.failures(), Limiter: s.connLimit.Stats(),
	}
	s.mu.Lock()
	for _, a := range s.apps {
		st.Nameplates += len(a.nameplates)
	}
	st.Mailboxes, st.Messages = s.nMailboxes, s.nMessages
	s.mu.Unlock()
	return st
}
