package integration_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
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

func TestBadRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.issue("alice", time.Hour, "api", "ws")
	bob := e.issue("bob", time.Hour, "api", "ws")
	for _, tc := range []struct {
		name   string
		path   string
		header http.Header
		status int
		code   string
	}{
		{"two different explicit credentials", "/api/me?token=" + bob, http.Header{"Authorization": {"Bearer " + alice}}, 400, "invalid_request"},
		{"empty bearer", "/api/me", http.Header{"Authorization": {"Bearer "}}, 400, "invalid_request"},
		{"repeated query token", "/api/me?token=" + alice + "&token=" + alice, nil, 400, "invalid_request"},
		{"more cookies than net/http parses", "/api/me", http.Header{"Cookie": {strings.Repeat("c=1; ", 3001) + "token=" + alice}}, 431, "too_many_cookies"},
		{"GET /ws without Upgrade", "/ws", http.Header{"Authorization": {"Bearer " + alice}}, 426, "invalid_request"},
		{"a query net/url drops whole (over 10,000 parameters) hides ?token= behind the cookie",
			"/api/me?token=" + bob + "&" + strings.Repeat("p&", 10_000), http.Header{"Cookie": {"token=" + alice}}, 400, "invalid_request"},
		{"a malformed query", "/api/me?token=" + bob + "&x=%zz", nil, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, h, body := e.get(tc.path, tc.header)
			if status != tc.status || !strings.Contains(body, `"error":"`+tc.code+`"`) {
				t.Errorf("%s: %d %s; want %d with error %s", tc.name, status, body, tc.status, tc.code)
			}
			if strings.Contains(body, alice) || strings.Contains(body, bob) {
				t.Errorf("%s: body contains a token", tc.name)
			}
			if tc.status == 400 && !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_request"`) {
				t.Errorf("%s: WWW-Authenticate = %q; want error=\"invalid_request\"", tc.name, h.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("wrong method", func(t *testing.T) {
		t.Parallel()
		resp, err := e.client.Post(e.URL+"/api/me", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || !strings.Contains(resp.Header.Get("Allow"), "GET") {
			t.Errorf("POST /api/me: %d Allow %q; want 405 with Allow: GET", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
}

// TestPrecedence: an explicit credential wins over the ambient cookie, so a
// client holding a fresh token is not refused for a stale cookie.
func TestPrecedence(t *testing.T) {
	t.Parallel()
	t.Run("api", testPrecedenceAPI)
	t.Run("ws", testPrecedenceWS)
}

// freshBearerStaleCookie is a request's headers with a valid bearer token
// and an expired one in the cookie, both alice's.
func freshBearerStaleCookie(e *env) http.Header {
	fresh := e.issue("alice", time.Hour, "api", "ws")
	stale := e.issue("alice", 0, "api", "ws")
	return http.Header{"Authorization": {"Bearer " + fresh}, "Cookie": {"token=" + stale}}
}

func testPrecedenceAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	status, _, body := e.get("/api/me", freshBearerStaleCookie(e))
	checkMe(t, status, body, "alice")
}

func testPrecedenceWS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, resp, body := e.dial("/ws", freshBearerStaleCookie(e))
	if c == nil {
		t.Fatalf("WebSocket with a valid bearer and a stale cookie: %d %s; want 101", resp.StatusCode, body)
	}
	checkWelcomeAndEcho(t, c, "alice")
}

// TestCookieShadowing: a page on another port of the same host, or one
// that sets a narrower Path, can plant a second token cookie that the
// browser sends before the user's own. When the cookie is the credential
// in use, a request carrying it twice is refused 400, on every route, at no
// cost to the token system; a request that authenticates otherwise is not
// refused for cookies it does not use.
func TestCookieShadowing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.issue("alice", time.Hour, "api", "ws")
	mallory := e.issue("mallory", time.Hour, "api", "ws")
	planted := http.Header{"Cookie": {"token=" + mallory + "; token=" + alice}}
	with := func(h http.Header, kv ...string) http.Header {
		out := h.Clone()
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}

	before := e.svc.Introspections()
	status, h, body := e.get("/api/me", planted)
	checkRefusal(t, "GET /api/me with the token cookie twice", status, h, body, 400, `Bearer realm="wsauth", error="invalid_request"`, "invalid_request", mallory)
	c, resp, body := e.dial("/ws", planted)
	if c != nil {
		t.Fatalf("WebSocket with the token cookie twice: upgraded; want 400")
	}
	checkRefusal(t, "WebSocket with the token cookie twice", resp.StatusCode, resp.Header, body, 400, `Bearer realm="wsauth", error="invalid_request"`, "invalid_request", mallory)
	status, _, body = e.post("/api/ws-ticket", with(planted, "Content-Type", "application/json"), "{}")
	if status != 400 || errorCode(body) != "invalid_request" {
		t.Errorf("POST /api/ws-ticket with the token cookie twice: %d %s; want 400 invalid_request", status, body)
	}
	if n := e.svc.Introspections() - before; n != 0 {
		t.Errorf("refusing repeated cookies cost %d introspections; want 0", n)
	}

	status, _, body = e.get("/api/me", with(planted, "Authorization", "Bearer "+alice))
	checkMe(t, status, body, "alice")
	c, resp, body = e.dial("/ws", with(planted, "Sec-WebSocket-Protocol", "wsauth.v1, wsauth.bearer."+alice))
	if c == nil {
		t.Fatalf("WebSocket by subprotocol with the token cookie twice: %d %s; want 101", resp.StatusCode, body)
	}
	checkWelcomeAndEcho(t, c, "alice")
	c, resp, body = e.dial("/ws?ticket="+e.mintTicket(t, alice), planted)
	if c == nil {
		t.Fatalf("WebSocket by ticket with the token cookie twice: %d %s; want 101", resp.StatusCode, body)
	}
	checkWelcomeAndEcho(t, c, "alice")
	if !e.log.logged("path=/ws status=400", "token cookie is sent more than once") {
		t.Errorf("the log has no 400 line for /ws naming the repeated cookie")
	}
}

// TestTokenSystemFailsClosed: when the token system cannot answer, the
// server answers 503 with Retry-After, within about the introspection
// timeout, and lets no one in.
func TestTokenSystemFailsClosed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults faketokensvc.Faults
	}{
		{"5xx", faketokensvc.Faults{Status: 500}},
		{"slower than the timeout", faketokensvc.Faults{Latency: 10 * time.Second}},
		{"garbage reply", faketokensvc.Faults{Garbage: true}},
		{"hangs up", faketokensvc.Faults{HangUp: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const timeout = 300 * time.Millisecond
			e := newEnv(t, withIntrospectTimeout(timeout))
			tok := e.issue("alice", time.Hour, "api", "ws")
			e.svc.SetFaults(tc.faults)
			h := http.Header{"Authorization": {"Bearer " + tok}}

			start := time.Now()
			status, hdr, body := e.get("/api/me", h)
			if d := time.Since(start); d > timeout+2*time.Second {
				t.Errorf("GET took %v; want about the %v timeout", d, timeout)
			}
			if status != 503 || hdr.Get("Retry-After") == "" || !strings.Contains(body, `"temporarily_unavailable"`) {
				t.Errorf("GET /api/me: %d Retry-After %q %s; want 503 with Retry-After", status, hdr.Get("Retry-After"), body)
			}
			c, resp, body := e.dial("/ws", h)
			if c != nil {
				t.Fatal("WebSocket upgraded while the token system is down; want 503")
			}
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
				t.Errorf("WebSocket: %d %s; want 503 with Retry-After", resp.StatusCode, body)
			}

			// The first request after recovery is served: 503 was not cached.
			e.svc.SetFaults(faketokensvc.Faults{})
			status, _, body = e.get("/api/me", h)
			checkMe(t, status, body, "alice")
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		tok := e.issue("alice", time.Hour, "api", "ws")
		e.closeTokenService()
		status, hdr, _ := e.get("/api/me", http.Header{"Authorization": {"Bearer " + tok}})
		if status != 503 || hdr.Get("Retry-After") == "" {
			t.Errorf("token system unreachable: %d; want 503 with Retry-After", status)
		}
	})
}

func TestWSS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withTLS())
	tok := e.issue("alice", time.Hour, "api", "ws")
	c, resp, body := e.dial("/ws", http.Header{"Sec-WebSocket-Protocol": {"wsauth.v1, wsauth.bearer." + tok}})
	if c == nil {
		t.Fatalf("wss: %d %s; want 101", resp.StatusCode, body)
	}
	if c.Protocol != "wsauth.v1" {
		t.Errorf("wss: Sec-WebSocket-Protocol = %q; want wsauth.v1", c.Protocol)
	}
	checkWelcomeAndEcho(t, c, "alice")
}

// TestCacheEndToEnd: 50 parallel WebSocket handshakes with one token cost
// one introspection.
func TestCacheEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.issue("alice", time.Hour, "api", "ws")
	e.svc.SetFaults(faketokensvc.Faults{Latency: 50 * time.Millisecond}) // the handshakes overlap
	var wg sync.WaitGroup
	errs := make(chan string, 50)
	for range 50 {
		wg.Go(func() {
			c, resp, body, err := e.dialer.Dial(e.URL+"/ws", http.Header{"Authorization": {"Bearer " + tok}})
			switch {
			case err != nil:
				errs <- err.Error()
			case c == nil:
				errs <- resp.Status + " " + body
			default:
				if m, err := c.ReadJSON(5 * time.Second); err != nil || m["sub"] != "alice" {
					errs <- fmt.Sprintf("welcome = %v, %v; want sub alice", m, err)
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.svc.Introspections(); n != 1 {
		t.Errorf("50 parallel handshakes with one token: %d introspections; want 1", n)
	}
}
