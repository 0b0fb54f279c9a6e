package icepage

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzHandler: whatever the path, query, Authorization header and Host,
// the handler answers without panicking, and credentials go only to a
// request that presented the token.
func FuzzHandler(f *testing.F) {
	f.Add(ServersPath, "token="+token, "", "127.0.0.1:4000")
	f.Add(Path, "", "Bearer "+token, "[::1]:4000")
	f.Add(ServersPath, "token=x&token="+token, "Bearer ", "h")
	f.Add("/ice-test/../ice-test/ice-servers", "token=%zz", "Bearer  "+token+" ", "")
	h, err := New(Config{Token: token, Mint: validMint})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path, query, auth, host string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.URL = &url.URL{Path: path, RawQuery: query}
		r.Host = host
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if strings.Contains(w.Body.String(), `"credential"`) && !h.authorized(r) {
			t.Fatalf("credentials without the token: %q %q %q", path, query, auth)
		}
		if w.Code == http.StatusOK && path != Path && path != ServersPath {
			t.Fatalf("200 for %q", path)
		}
	})
}
