package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"
	"github.com/icebreaker-net/icebreaker/internal/icepage"
	"github.com/icebreaker-net/icebreaker/internal/natlab"
	"github.com/icebreaker-net/icebreaker/internal/testutil"
)

// pageResult is window.iceTest, what the ICE test page found.
type pageResult struct {
	State      string
	Error      string
	Elapsed    int
	Candidates []pageCandidate
	Errors     []struct {
		Time int
		URL  string
		Code int
		Text string
	}
}

type pageCandidate struct {
	Time                                   int
	Type, Protocol, Address, RelayProtocol string
	URL                                    string
	Port                                   int
	Candidate                              string
}

// relay returns the relay candidate gathered through url, if any.
func (r pageResult) relay(url string) (pageCandidate, bool) {
	for _, c := range r.Candidates {
		if c.Type == "relay" && c.URL == url {
			return c, true
		}
	}
	return pageCandidate{}, false
}

// startChromium starts chromium (the program bin) headless with extra
// flags, for this test only, and returns a chromedp context on a tab of
// it. Cleanup closes the tab and kills chromium's process group by its PID.
func startChromium(t *testing.T, ctx context.Context, bin string, extra ...string) context.Context {
	t.Helper()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		// Nothing but the page: no update checks, field trials, sync and
		// the like, which would try to reach the Internet.
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
		// Even so, chromium looks up clients2.google.com and
		// update.googleapis.com: resolve no name at all (the test uses
		// 127.0.0.1 only), so that no DNS query leaves the host.
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--user-data-dir=" + t.TempDir(), "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		// Host candidates by their address rather than an mDNS name, so
		// that chromium sends no mDNS announcement to the LAN.
		"--disable-features=WebRtcHideLocalIpsWithMdns",
		// WebRTC leaves loopback interfaces out; on a host whose only
		// interface is lo (a container with no network) it would have no
		// socket to gather from.
		"--allow-loopback-in-peer-connection",
	}, extra...)
	p := testutil.Start(t, testutil.Command(ctx, bin, append(args, "about:blank")...))
	devtools := regexp.MustCompile(`DevTools listening on (ws://\S+)`)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := p.WaitFor(wctx, "the DevTools URL", devtools.MatchString); err != nil {
		t.Fatal(err)
	}
	actx, cancelAlloc := remote.NewAllocator(ctx, devtools.FindStringSubmatch(p.Output())[1], remote.NoModifyURL)
	tab, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { // before the process group is killed: cleanups run last first
		cancelTab()
		cancelAlloc()
	})
	return tab
}

// openTestPage opens url in a new chromium with flags and returns what
// the page found once gathering has ended.
func openTestPage(t *testing.T, ctx context.Context, chromium, url string, flags ...string) pageResult {
	t.Helper()
	tab := startChromium(t, ctx, chromium, flags...)
	err := chromedp.Do(tab, chromedp.Navigate(url))
	var res pageResult
	if err == nil {
		res, err = chromedp.Run(tab, chromedp.Poll[pageResult](`["done", "error"].includes(window.iceTest && window.iceTest.state) && window.iceTest`,
			chromedp.WithPollingTimeout(20*time.Second)))
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	t.Logf("the page found:\n%s", b)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if res.State != "done" {
		t.Fatalf("the page ended in state %q: %s", res.State, res.Error)
	}
	return res
}

// TestServeICETestPage: a real browser (Debian's chromium, headless)
// opens the ICE test page of the built `serve`, gathers with the ephemeral
// credentials of the page's endpoint, and finds relay candidates through
// our TURN server over UDP, TCP and (trusting the test's self-signed
// certificate) TLS, or reports the untrusted certificate as an
// icecandidateerror of the turns: URL. Without the token the page and the
// endpoint refuse.
//
// What chromium needs: the TURN server and its relay address on 127.0.0.1
// work as they are (chromium gathers from its non-loopback interfaces and
// sends to 127.0.0.1; allocation needs no relay policy exception, since
// gathering creates no permission); --allow-loopback-in-peer-connection
// lets it gather on a host whose only interface is lo; turns: needs a
// certificate chromium trusts (here --ignore-certificate-errors).
func TestServeICETestPage(t *testing.T) {
	const token = "page-token-0123456789"
	chromium := testutil.RequireBinary(t, "chromium")
	before := runtime.NumGoroutine()
	t.Cleanup(func() { testutil.CheckGoroutines(t, before) }) // chromedp's, after the tabs closed
	bin := natlab.BuildBinary(t, "github.com/icebreaker-net/icebreaker/cmd/icebreaker")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	file := filepath.Join(dir, "icebreaker.yaml")
	writeFile(t, file, "rendezvous:\n  listen: 127.0.0.1:0\n  tls_listen: \"off\"\n  transit_listen: \"off\"\n  db: none\n"+
		"  test_page:\n    enabled: true\n    token: "+token+"\n")
	certFile, keyFile, _ := writeTestCert(t)
	cmd := testutil.Command(ctx, bin, "serve", "--config", file, "--listen", "127.0.0.1", "--port", "0",
		"--tls-port", "0", "--tls-cert", certFile, "--tls-key", keyFile,
		"--user-db", "none", "--rest-secret", "s3cret", "--admin", "none")
	cmd.Env = append(cmd.Environ(), "ICEBREAKER_DATA_DIR="+dir)
	srv := testutil.Start(t, cmd)
	pageLine := regexp.MustCompile(`ICE test page (http://\S+)\?token=TOKEN`)
	if err := srv.WaitFor(ctx, "the ICE test page line", pageLine.MatchString); err != nil {
		t.Fatal(err)
	}
	page := pageLine.FindStringSubmatch(srv.Output())[1]
	ports := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^  (udp|tcp|tls) +127\.0\.0\.1:(\d+)$`).FindAllStringSubmatch(srv.Output(), -1) {
		ports[m[1]] = m[2]
	}
	if !strings.HasSuffix(page, icepage.Path) || len(ports) != 3 {
		t.Fatalf("page %s, ports %v:\n%s", page, ports, srv.Output())
	}

	for _, tt := range []struct {
		url, auth string
		code      int
	}{
		{page, "", http.StatusNotFound},
		{page + "?token=wrong-token-0123456789", "", http.StatusNotFound},
		{page + "/ice-servers", "", http.StatusForbidden},
		{page + "/ice-servers", "Bearer wrong-token-0123456789", http.StatusForbidden},
		{page + "/ice-servers?token=" + token[:len(token)-1], "", http.StatusForbidden},
	} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, tt.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body strings.Builder
		_, _ = io.Copy(&body, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || strings.Contains(body.String(), "credential") {
			t.Errorf("GET %s (%q): %d %q, want %d and no credential", tt.url, tt.auth, resp.StatusCode, body.String(), tt.code)
		}
	}

	udpURL := "turn:127.0.0.1:" + ports["udp"] + "?transport=udp"
	tcpURL := "turn:127.0.0.1:" + ports["tcp"] + "?transport=tcp"
	tlsURL := "turns:127.0.0.1:" + ports["tls"] + "?transport=tcp"
	checkRelays := func(t *testing.T, res pageResult) {
		t.Helper()
		// Chromium leaves relayProtocol empty for TURN over UDP.
		if c, ok := res.relay(udpURL); !ok || c.Address != "127.0.0.1" || (c.RelayProtocol != "udp" && c.RelayProtocol != "") {
			t.Errorf("no relay candidate through %s: %+v", udpURL, c)
		}
		if c, ok := res.relay(tcpURL); !ok || c.Address != "127.0.0.1" || c.RelayProtocol != "tcp" {
			t.Errorf("no relay candidate through %s: %+v", tcpURL, c)
		}
	}
	t.Run("trusted", func(t *testing.T) {
		res := openTestPage(t, ctx, chromium, page+"?token="+token, "--ignore-certificate-errors")
		checkRelays(t, res)
		if c, ok := res.relay(tlsURL); !ok || c.RelayProtocol != "tls" {
			t.Errorf("no relay candidate through %s: %+v", tlsURL, c)
		}
		if len(res.Errors) != 0 {
			t.Errorf("errors: %+v", res.Errors)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		res := openTestPage(t, ctx, chromium, page+"?token="+token)
		checkRelays(t, res)
		if c, ok := res.relay(tlsURL); ok {
			t.Errorf("a relay candidate through %s with a certificate chromium does not trust: %+v", tlsURL, c)
		}
		if len(res.Errors) != 1 || res.Errors[0].URL != tlsURL || res.Errors[0].Code != 701 {
			t.Errorf("errors %+v, want one 701 for %s", res.Errors, tlsURL)
		}
	})
	// The allocations went through our server, with the page's credentials.
	for _, transport := range []string{"udp", "tcp", "tls"} {
		if !regexp.MustCompile(`msg="turn allocation created" user=ice-test-page client=127\.0\.0\.1:\d+ transport=` + transport).MatchString(srv.Output()) {
			t.Errorf("serve logged no allocation over %s for the page:\n%s", transport, srv.Output())
		}
	}
}
