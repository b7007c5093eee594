package integration_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"wsauth/server"
)

// TestOrigin is the defence against cross-site WebSocket hijacking: a page
// of another origin must not open a WebSocket with the visitor's cookie.
func TestOrigin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		origin []string
		want   int
	}{
		{"same host", []string{"http://HOST"}, 101},
		{"same host, other scheme (TLS-terminating proxy)", []string{"https://HOST"}, 101},
		{"allowed origin", []string{"https://app.example.com"}, 101},
		{"no Origin (not a browser)", nil, 101},
		{"foreign page with a valid cookie (the hijack)", []string{"https://evil.example"}, 403},
		{"same host, other port", []string{"http://127.0.0.1:1"}, 403},
		{"null", []string{"null"}, 403},
		{"unparsable", []string{"http://[::1"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// An env of its own: the introspection count below is this
			// case's alone.
			e := newEnv(t, withProfile()) // allows https://app.example.com
			host := strings.TrimPrefix(e.URL, "http://")
			tok := e.issue("alice", time.Hour, "api", "ws")
			h := http.Header{"Cookie": {"token=" + tok}}
			for _, o := range tc.origin {
				h.Add("Origin", strings.ReplaceAll(o, "HOST", host))
			}
			c, resp, body := e.dial("/ws", h)
			if tc.want == 101 {
				if c == nil {
					t.Fatalf("Origin %q: status %d %s; want 101", tc.origin, resp.StatusCode, body)
				}
				checkWelcomeAndEcho(t, c, "alice")
				return
			}
			if c != nil {
				t.Fatalf("Origin %q: upgraded; want 403", tc.origin)
			}
			checkRefusal(t, "Origin "+strings.Join(tc.origin, ","), resp.StatusCode, resp.Header, body, 403, "", "forbidden_origin", tok)
			if !remote() { // a shared token service counts every test's calls
				if n := e.svc.Introspections(); n != 0 {
					t.Errorf("refused origin cost %d introspections; want 0: the Origin is checked before the token", n)
				}
			}
		})
	}
}

// TestOriginScheme: when the server knows the client used TLS (it serves
// TLS, or a trusted proxy says X-Forwarded-Proto: https), a page of the
// same host must be an https page: a plain-http page of that host, which
// anyone on the network path can write, may not open the wss socket with
// the visitor's cookie. When the server cannot know, the scheme is not
// compared.
func TestOriginScheme(t *testing.T) {
	t.Parallel()
	trusted, _ := server.ParseTrustedProxies("127.0.0.1")
	for _, tc := range []struct {
		name   string
		opts   []envOption
		header http.Header // besides the cookie and Origin
		scheme string      // of the Origin
		want   int
	}{
		{"TLS, https page", []envOption{withTLS()}, nil, "https", 101},
		{"TLS, http page", []envOption{withTLS()}, nil, "http", 403},
		{"trusted proxy says https, https page", []envOption{withServer(func(c *server.Config) { c.TrustedProxies = trusted })},
			http.Header{"X-Forwarded-Proto": {"https"}}, "https", 101},
		{"trusted proxy says https, http page", []envOption{withServer(func(c *server.Config) { c.TrustedProxies = trusted })},
			http.Header{"X-Forwarded-Proto": {"https"}}, "http", 403},
		{"untrusted peer says https, http page (scheme unknown)", nil,
			http.Header{"X-Forwarded-Proto": {"https"}}, "http", 101},
		{"plain http, https page (scheme unknown: a proxy may terminate TLS)", nil, nil, "https", 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.opts...)
			host := e.URL[strings.Index(e.URL, "://")+3:]
			tok := e.issue("alice", time.Hour, "api", "ws")
			h := http.Header{"Cookie": {"token=" + tok}, "Origin": {tc.scheme + "://" + host}}
			for k, v := range tc.header {
				h[k] = v
			}
			c, resp, body := e.dial("/ws", h)
			if tc.want == 101 {
				if c == nil {
					t.Fatalf("Origin %s://%s: status %d %s; want 101", tc.scheme, host, resp.StatusCode, body)
				}
				checkWelcomeAndEcho(t, c, "alice")
				return
			}
			if c != nil {
				t.Fatalf("Origin %s://%s: upgraded; want 403", tc.scheme, host)
			}
			checkRefusal(t, "Origin "+tc.scheme+"://"+host, resp.StatusCode, resp.Header, body, 403, "", "forbidden_origin", tok)
			// Minting a ticket by cookie follows the same rule.
			h.Set("Content-Type", "application/json")
			if status, _, body := e.post("/api/ws-ticket", h, "{}"); status != 403 || errorCode(body) != "forbidden_origin" {
				t.Errorf("POST /api/ws-ticket from Origin %s://%s: %d %s; want 403 forbidden_origin", tc.scheme, host, status, body)
			}
		})
	}
}
