package icepage

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/iceservers"
	"github.com/icebreaker-net/icebreaker/turn"
)

const token = "0123456789abcdef-token"

var validMint = iceservers.Config{UDPPort: 3478, TCPPort: 3479, Secret: "s3cret", TTL: 300 * time.Second, Token: "ignored"}

func newHandler(t *testing.T) *Handler {
	t.Helper()
	h, err := New(Config{Token: token, User: "test-page", Now: func() time.Time { return time.Unix(1700000000, 0) }, Mint: validMint})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func do(h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestTokenRequired(t *testing.T) {
	h := newHandler(t)
	bearer := func(s string) http.Header { return http.Header{"Authorization": {"Bearer " + s}} }
	for _, tt := range []struct {
		name, method, target string
		header               http.Header
		code                 int
	}{
		{"page with token", "GET", Path + "?token=" + token, nil, 200},
		{"page head", "HEAD", Path + "?token=" + token, nil, 200},
		{"page bearer", "GET", Path, bearer(token), 200},
		{"page without token", "GET", Path, nil, 404},
		{"page wrong token", "GET", Path + "?token=" + token + "x", nil, 404},
		{"page token prefix", "GET", Path + "?token=" + token[:10], nil, 404},
		{"page empty bearer", "GET", Path + "?token=" + token, bearer(""), 404}, // the header, when given, is what counts
		{"page post", "POST", Path + "?token=" + token, nil, 405},
		{"servers with token", "GET", ServersPath + "?token=" + token, nil, 200},
		{"servers bearer", "GET", ServersPath, bearer(token), 200},
		{"servers without token", "GET", ServersPath, nil, 403},
		{"servers wrong bearer", "GET", ServersPath, bearer("nope"), 403},
		{"servers post", "POST", ServersPath, bearer(token), 405},
		{"other path", "GET", "/ice-test/x?token=" + token, nil, 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := do(h, tt.method, tt.target, tt.header)
			if w.Code != tt.code {
				t.Fatalf("%s %s: %d, want %d: %s", tt.method, tt.target, w.Code, tt.code, w.Body)
			}
			if tt.code != 200 && strings.Contains(w.Body.String(), "credential") {
				t.Errorf("a refused request got credentials: %s", w.Body)
			}
			if got := w.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q", got)
			}
		})
	}
}

// TestServers: the endpoint's JSON is the rendezvous reply, with REST
// credentials the TURN server accepts, for the host the browser used.
func TestServers(t *testing.T) {
	h := newHandler(t)
	w := do(h, "GET", "http://[::1]:4000"+ServersPath, http.Header{"Authorization": {"Bearer " + token}})
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", w.Code, w.Header())
	}
	var got iceservers.Reply
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	user, pw := turn.RESTCredentials("s3cret", "test-page", time.Unix(1700000300, 0))
	want := iceservers.Reply{Type: iceservers.Command, TTL: 300, ICEServers: []iceservers.Server{
		{URLs: []string{"stun:[::1]:3478"}},
		{URLs: []string{"turn:[::1]:3478?transport=udp", "turn:[::1]:3479?transport=tcp"}, Username: user, Credential: pw},
	}}
	if g, _ := json.Marshal(got); string(g) != mustJSON(t, want) {
		t.Errorf("got  %s\nwant %s", g, mustJSON(t, want))
	}
	r := httptest.NewRequest("GET", ServersPath+"?token="+token, nil)
	r.Host = "bad host"
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "no usable host name") {
		t.Errorf("bad Host: %d %s", w.Code, w.Body)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestContentPolicy: the page's CSP allows exactly its inline script and
// style, and the page loads nothing from anywhere.
func TestContentPolicy(t *testing.T) {
	w := do(newHandler(t), "GET", Path+"?token="+token, nil)
	csp := w.Header().Get("Content-Security-Policy")
	body := w.Body.String()
	for _, tag := range []string{"script", "style"} {
		m := regexp.MustCompile(`(?s)<` + tag + `>(.*)</` + tag + `>`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no inline %s", tag)
		}
		sum := sha256.Sum256([]byte(m[1]))
		if want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if !strings.HasPrefix(csp, "default-src 'none';") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	if regexp.MustCompile(`(?i)(src|href)=|https?://|@import|url\(`).MatchString(body) {
		t.Error("the page refers to an external resource")
	}
	if w.Header().Get("Referrer-Policy") != "no-referrer" || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("headers %v", w.Header())
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Mint: iceservers.Config{Secret: "s"}}, {Token: token}} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	if _, err := contentPolicy([]byte("<script>a</script><script>b</script><style></style>")); err == nil {
		t.Error("two scripts accepted")
	}
}
