// Package icepage serves the ICE test page of `icebreaker serve`: a page
// where a WebRTC developer tests this server from a browser, as people use
// WebRTC's Trickle ICE sample page
// (https://webrtc.github.io/samples/src/content/peerconnection/trickle-ice/).
// The page fetches this server's STUN and TURN URIs (RFC 7064, RFC 7065)
// with ephemeral TURN REST credentials from its JSON endpoint, gathers ICE
// candidates (RFC 8445, Section 5.1.1) with an RTCPeerConnection
// (https://www.w3.org/TR/webrtc/), and shows each host, srflx and relay
// candidate with its transport, the TURN URL and relay protocol it came
// through, and the time it took, and each icecandidateerror.
//
// The page and its endpoint require a token, as the token query parameter
// or an "Authorization: Bearer" header: without it the page answers 404
// (it does not say that it exists) and the endpoint 403, and no
// credential is minted. Credentials come from internal/iceservers, the
// same minting as the rendezvous' icebreaker-ice-servers command, in the
// same JSON shape (iceservers.Reply). The page is one embedded HTML file
// whose script and style are inline and allowed by their hashes in a
// Content-Security-Policy that allows nothing else: no external resource,
// no other script, and fetch only to this origin.
//
// The Handler does no rate limiting of its own: `icebreaker serve` mounts
// it on the rendezvous (wormhole/mailbox Config.HTTP), whose per-address
// limiter counts every request.
package icepage

import (
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/iceservers"
)

// Paths of the page and its JSON endpoint.
const (
	Path        = "/ice-test"
	ServersPath = Path + "/ice-servers"
)

// TokenParam is the query parameter that carries the token.
const TokenParam = "token"

//go:embed page.html
var page []byte

// Config configures a Handler.
type Config struct {
	// Token is what every request must present; required.
	Token string
	// Mint mints the endpoint's ICE servers; its Token is not used (the
	// Handler checks its own).
	Mint iceservers.Config
	// User names the page's credentials in the TURN usage records (the
	// part after the expiry in the REST username); "" for none.
	User string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	if c.Token == "" {
		return errors.New("icepage: no token")
	}
	if !c.Mint.HasSecret() {
		return errors.New("icepage: no REST secret to mint TURN credentials with")
	}
	return nil
}

// Handler serves the page at Path and the ICE servers at ServersPath, and
// 404 for anything else. It is safe for concurrent use. Create it with
// New.
type Handler struct {
	cfg Config
	csp string
}

// New returns a Handler for cfg. It starts nothing.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Mint.Token = ""
	csp, err := contentPolicy(page)
	if err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg, csp: csp}, nil
}

// contentPolicy returns the Content-Security-Policy of html: its inline
// script and style allowed by their SHA-256 hashes (CSP Level 3, Section
// 8.3), fetch to this origin, nothing else.
func contentPolicy(html []byte) (string, error) {
	hash := func(tag string) (string, error) {
		s := string(html)
		open, end := "<"+tag+">", "</"+tag+">"
		i := strings.Index(s, open)
		j := strings.Index(s, end)
		if i < 0 || j < i || strings.Count(s, open) != 1 {
			return "", fmt.Errorf("icepage: the page needs exactly one inline <%s>", tag)
		}
		sum := sha256.Sum256([]byte(s[i+len(open) : j]))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'", nil
	}
	script, err := hash("script")
	if err != nil {
		return "", err
	}
	style, err := hash("style")
	if err != nil {
		return "", err
	}
	return "default-src 'none'; script-src " + script + "; style-src " + style +
		"; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'", nil
}

// ServeHTTP answers the page and its endpoint.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer") // the token is in the page's URL
	hd.Set("X-Content-Type-Options", "nosniff")
	switch r.URL.Path {
	case Path:
		if !h.authorized(r) {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			hd.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		hd.Set("Content-Security-Policy", h.csp)
		hd.Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	case ServersPath:
		if !h.authorized(r) {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": iceservers.ErrToken.Error()})
			return
		}
		if r.Method != http.MethodGet {
			hd.Set("Allow", "GET")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
			return
		}
		host := r.Host
		if hp, _, err := net.SplitHostPort(host); err == nil {
			host = hp
		}
		reply, err := h.cfg.Mint.MintReply(host, "", h.cfg.User, h.cfg.Now())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "no ICE servers: " + err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, reply)
	default:
		http.NotFound(w, r)
	}
}

// authorized reports whether r presents the token, in the query or as a
// bearer token, comparing in constant time.
func (h *Handler) authorized(r *http.Request) bool {
	got := r.URL.Query().Get(TokenParam)
	if a, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		got = strings.TrimSpace(a)
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(h.cfg.Token)) == 1
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
