package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestCheckUpgrade: checkUpgrade refuses, before any credential is looked
// at, every request x/net/websocket would refuse only after the hijack,
// with the status a client can read (400, 405 or 426).
func TestCheckUpgrade(t *testing.T) {
	t.Parallel()
	good := func() *http.Request {
		r := httptest.NewRequest("GET", "/ws", nil)
		r.Header.Set("Connection", "keep-alive, Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		return r
	}
	for _, tc := range []struct {
		name   string
		mutate func(*http.Request)
		status int
	}{
		{"good", func(*http.Request) {}, 0},
		{"HTTP/1.0", func(r *http.Request) { r.Proto, r.ProtoMinor = "HTTP/1.0", 0 }, 400},
		{"no Upgrade", func(r *http.Request) { r.Header.Del("Upgrade") }, 426},
		{"no Connection: upgrade", func(r *http.Request) { r.Header.Set("Connection", "keep-alive") }, 426},
		{"version 8", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") }, 426},
		{"no key", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Key") }, 400},
		{"short key", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "c2hvcnQ=") }, 400},
		{"HEAD", func(r *http.Request) { r.Method = "HEAD" }, 405},
		{"POST", func(r *http.Request) { r.Method = "POST" }, 405},
		{"Host with a port x/net cannot parse", func(r *http.Request) { r.Host = "example.com:abc" }, 400},
		{"Host with a bad escape", func(r *http.Request) { r.Host = "exa%zzmple.com" }, 400},
		{"IPv6 Host", func(r *http.Request) { r.Host = "[::1]:8080" }, 0},
		{"Connection: upgrade on a second line only (x/net reads the first)", func(r *http.Request) {
			r.Header["Connection"] = []string{"keep-alive", "Upgrade"}
		}, 426},
	} {
		r := good()
		tc.mutate(r)
		err := checkUpgrade(r)
		got := 0
		if err != nil {
			got = answerFor(err).status
		}
		if got != tc.status {
			t.Errorf("%s: checkUpgrade status = %d (%v); want %d", tc.name, got, err, tc.status)
		}
	}
}
