package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/config"
	"github.com/icebreaker-net/icebreaker/internal/userstore"
	"github.com/icebreaker-net/icebreaker/turn/turnserver"
)

// The admin endpoint of `icebreaker serve` (admin.listen): plain HTTP on
// a Unix socket (mode 0600) or a loopback address, for `icebreaker
// status`, `sessions`, `reload` and `drain`, and /healthz and /readyz for
// probes. Requests that change something must be POSTs with the
// adminHeader, which a browser cannot send cross-origin without a
// preflight that this server never answers.

const adminHeader = "X-Icebreaker-Admin"

// defaultAdminPath is admin.sock beside the default user store.
func defaultAdminPath() (string, error) {
	db, err := userstore.DefaultPath()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(db), "admin.sock"), nil
}

// listenAdmin opens the admin endpoint of the validated admin.listen: ""
// for the default socket (whose directory must exist), a socket path, or
// a loopback IP:PORT. It returns nil, nil when the endpoint is off. A
// stale socket file (no server answers on it) is replaced; a live one is
// an error.
func listenAdmin(c config.Admin) (net.Listener, error) {
	if c.Listen == config.NoAdmin {
		return nil, nil
	}
	if ap := c.AdminAddr(); ap.IsValid() {
		ln, err := net.Listen("tcp", ap.String())
		if err != nil {
			return nil, listenError(err, "choose another admin.listen")
		}
		return ln, nil
	}
	path := c.Listen
	if path == "" {
		var err error
		if path, err = defaultAdminPath(); err != nil {
			return nil, err
		}
		// Like the user store, the server creates no directory of its
		// own accord: `icebreaker user add` (or the package) makes it.
		if _, err := os.Stat(filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("no directory for the default admin socket %s (icebreaker user add creates it): %w", path, err)
		}
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("admin socket %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s: another server answers on it (set admin.listen, or stop that server)", path)
		}
		os.Remove(path) // stale: left by a server that died
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return ln, nil
}

// adminHandler serves the admin API of d.
func adminHandler(ctx context.Context, d *daemon) http.Handler {
	mux := http.NewServeMux()
	addHealth(mux, d)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, d.status())
	})
	mux.HandleFunc("GET /sessions", func(w http.ResponseWriter, r *http.Request) {
		if d.tr == nil {
			writeJSON(w, http.StatusOK, []turnserver.Session{})
			return
		}
		ss := d.tr.server.Sessions(r.URL.Query().Get("user"))
		if ss == nil {
			ss = []turnserver.Session{}
		}
		writeJSON(w, http.StatusOK, ss)
	})
	mux.HandleFunc("POST /sessions/kill", adminPost(func(w http.ResponseWriter, r *http.Request) {
		if d.tr == nil {
			writeError(w, http.StatusNotFound, errors.New("TURN is off"))
			return
		}
		id, user := r.URL.Query().Get("id"), r.URL.Query().Get("user")
		n := 0
		switch {
		case id != "" && user == "":
			if d.tr.server.KillSession(id) {
				n = 1
			} else {
				writeError(w, http.StatusNotFound, fmt.Errorf("no session %q", id))
				return
			}
		case user != "" && id == "":
			n = d.tr.server.KillUser(user)
		default:
			writeError(w, http.StatusBadRequest, errors.New("give id or user"))
			return
		}
		d.logger.Info("sessions killed", "id", id, "user", user, "count", n)
		writeJSON(w, http.StatusOK, map[string]int{"killed": n})
	}))
	mux.HandleFunc("POST /reload", adminPost(func(w http.ResponseWriter, _ *http.Request) {
		d.logger.Info("admin: reloading the configuration")
		restart, err := d.reload(ctx)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"reloaded": true, "restart_needed": restart})
	}))
	mux.HandleFunc("POST /drain", adminPost(func(w http.ResponseWriter, r *http.Request) {
		timeout, _ := d.drainConfig()
		if s := r.URL.Query().Get("timeout"); s != "" {
			t, err := time.ParseDuration(s)
			if err != nil || t < 0 {
				writeError(w, http.StatusBadRequest, fmt.Errorf("timeout %q is not a duration", s))
				return
			}
			timeout = t
		} else if timeout == 0 {
			timeout = defaultDrainWait
		}
		n := d.startDrain(timeout)
		writeJSON(w, http.StatusOK, map[string]any{"draining": true, "allocations": n, "timeout": timeout.String()})
	}))
	return mux
}

// addHealth adds /healthz (the process serves) and /readyz (it takes new
// allocations: 503 while draining) to mux.
func addHealth(mux *http.ServeMux, d *daemon) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if draining, _ := d.drainState(); draining {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
}

func adminPost(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(adminHeader) == "" {
			writeError(w, http.StatusForbidden, fmt.Errorf("missing the %s header", adminHeader))
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// adminServer runs the admin endpoint on one goroutine; serve owns it:
// stop shuts it down and waits for that goroutine.
type adminServer struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

func startAdmin(ln net.Listener, h http.Handler, logger *slog.Logger) *adminServer {
	a := &adminServer{ln: ln, done: make(chan struct{}), srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: metricsHeaderTimeout,
		ReadTimeout:       metricsReadTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       metricsIdleTimeout,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin endpoint stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return a
}

// stop shuts the endpoint down (the socket file is removed) and waits for
// its goroutine. It may be called more than once.
func (a *adminServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		a.srv.Close()
	}
	<-a.done
}

// adminClient talks to the admin endpoint at addr: a socket path or a
// loopback IP:PORT.
type adminClient struct {
	addr string
	hc   *http.Client
}

func newAdminClient(addr string) (*adminClient, error) {
	if addr == "" {
		var err error
		if addr, err = defaultAdminPath(); err != nil {
			return nil, err
		}
	}
	network := "unix"
	if !strings.Contains(addr, "/") && !strings.HasSuffix(addr, ".sock") {
		network = "tcp"
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return &adminClient{addr: addr, hc: &http.Client{
		Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true},
		Timeout:   30 * time.Second,
	}}, nil
}

// do sends a request and decodes the JSON answer into out; an error
// answer becomes an error.
func (c *adminClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://icebreaker-admin"+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set(adminHeader, "1")
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("no server answers on the admin endpoint %s (is `icebreaker serve` running? --admin names another endpoint)", c.addr)
		}
		return fmt.Errorf("admin endpoint %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("admin endpoint %s: %s", c.addr, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
