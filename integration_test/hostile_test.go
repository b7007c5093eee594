package integration_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wsauth/server"
)

// wellBehaved runs a client that does everything right, GET /api/me and a
// WebSocket echo, in a loop until the returned stop is called; stop
// reports every time it was not served normally and how often it was served.
func wellBehaved(t *testing.T, e *env) (stop func()) {
	t.Helper()
	tok := e.issue("goodclient", time.Hour, "api", "ws")
	done := make(chan struct{})
	finished := make(chan struct{})
	var served atomic.Int64
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	client := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(finished)
		defer client.CloseIdleConnections()
		for {
			select {
			case <-done:
				return
			default:
			}
			start := time.Now()
			req, _ := http.NewRequest("GET", e.URL+"/api/me", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				fail("GET /api/me: %v", err)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				fail("GET /api/me: %d", resp.StatusCode)
			}
			c, resp, _, err := e.dialer.Dial(e.URL+"/ws", bearer(tok))
			if err != nil || c == nil {
				fail("dial /ws: %v %v", err, resp)
				continue
			}
			if m, err := c.ReadJSON(5 * time.Second); err != nil || m["type"] != "welcome" {
				fail("welcome: %v %v", m, err)
			}
			c.WriteText("ping")
			if m, err := c.ReadJSON(5 * time.Second); err != nil || m["data"] != "ping" {
				fail("echo: %v %v", m, err)
			}
			c.Close()
			if d := time.Since(start); d > 2*time.Second {
				fail("one round took %v", d)
			}
			served.Add(1)
		}
	}()
	return func() {
		t.Helper()
		close(done)
		<-finished
		mu.Lock()
		defer mu.Unlock()
		for _, f := range failures {
			t.Errorf("well-behaved client meanwhile: %s; want it served normally", f)
		}
		if served.Load() == 0 {
			t.Errorf("well-behaved client was never served")
		}
	}
}

const wsHeaders = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

// TestBadInput sends what a hostile or broken client sends, over raw TCP
// where Go's client would refuse: each request gets a clear 4xx, none
// reaches a handler (which would answer 200 or 101), none costs a call to
// the token system when its token is malformed, and a well-behaved client
// is served normally all along.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	host := strings.TrimPrefix(e.URL, "http://")
	valid := e.issue("alice", time.Hour, "api", "ws")
	stop := wellBehaved(t, e)

	megaToken := strings.Repeat("A", 1_000_000)
	cookies := make([]string, 3001)
	for i := range cookies {
		cookies[i] = fmt.Sprintf("c%d=v", i)
	}
	get := func(target, headers string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + headers + "\r\n"
	}
	for _, tc := range []struct {
		name       string
		raw        string
		status     int
		errCode    string // "" when net/http answers, not the server
		header     [2]string
		introspect bool // whether the token system may be asked
	}{
		{"headers over net/http's 1 MB limit", get("/api/me", "X-Pad: "+strings.Repeat("p", 1<<20+8192)+"\r\n"),
			431, "", [2]string{}, false},
		{"3001 cookies", get("/api/me", "Cookie: "+strings.Join(cookies, "; ")+"\r\n"),
			431, "too_many_cookies", [2]string{}, false},
		{"3001 cookies on /ws", get("/ws", wsHeaders+"Cookie: "+strings.Join(cookies, "; ")+"\r\n"),
			431, "too_many_cookies", [2]string{}, false},
		{"1 MB bearer token", get("/api/me", "Authorization: Bearer "+megaToken+"\r\n"),
			401, "invalid_token", [2]string{"WWW-Authenticate", `Bearer realm="wsauth", error="invalid_token"`}, false},
		{"1 MB query token", get("/api/me?token="+megaToken, ""), 401, "invalid_token", [2]string{}, false},
		{"1 MB subprotocol token", get("/ws", wsHeaders+"Sec-WebSocket-Protocol: wsauth.v1, wsauth.bearer."+megaToken+"\r\n"),
			401, "invalid_token", [2]string{}, false},
		{"NUL in a bearer token (net/http refuses the header)", get("/api/me", "Authorization: Bearer abc\x00def\r\n"),
			400, "", [2]string{}, false},
		{"NUL in a query token", get("/api/me?token=abc%00def", ""), 401, "invalid_token", [2]string{}, false},
		{"non-ASCII bearer token", get("/api/me", "Authorization: Bearer t\xc3\xb6k\xff\r\n"),
			401, "invalid_token", [2]string{}, false},
		{"non-ASCII query token", get("/api/me?token=t%C3%B6k", ""), 401, "invalid_token", [2]string{}, false},
		{"non-ASCII cookie token", get("/api/me", "Cookie: token=t\xc3\xb6k\r\n"), 401, "", [2]string{}, false},
		{"control byte in a token", get("/api/me?token=a%07b", ""), 401, "invalid_token", [2]string{}, false},
		{"plain GET of /ws", get("/ws", "Authorization: Bearer "+valid+"\r\n"),
			426, "invalid_request", [2]string{"Upgrade", "websocket"}, false},
		{"h2c upgrade of /ws", get("/ws", "Upgrade: h2c\r\nConnection: Upgrade\r\nAuthorization: Bearer "+valid+"\r\n"),
			426, "invalid_request", [2]string{"Upgrade", "websocket"}, false},
		{"HTTP/1.0 handshake", "GET /ws HTTP/1.0\r\nHost: " + host + "\r\n" + wsHeaders + "Authorization: Bearer " + valid + "\r\n\r\n",
			400, "invalid_request", [2]string{}, false},
		{"handshake without Sec-WebSocket-Key",
			get("/ws", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer "+valid+"\r\n"),
			400, "invalid_request", [2]string{}, false},
		{"handshake with version 8",
			get("/ws", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer "+valid+"\r\n"),
			426, "invalid_request", [2]string{"Sec-WebSocket-Version", "13"}, false},
		{"POST /api/me", "POST /api/me HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + valid + "\r\nContent-Length: 0\r\n\r\n",
			405, "", [2]string{"Allow", "GET, HEAD"}, false},
		{"DELETE /ws", "DELETE /ws HTTP/1.1\r\nHost: " + host + "\r\n" + wsHeaders + "Authorization: Bearer " + valid + "\r\n\r\n",
			405, "", [2]string{"Allow", "GET, HEAD"}, false},
		{"HEAD /ws, which the GET pattern also matches", "HEAD /ws HTTP/1.1\r\nHost: " + host + "\r\n" + wsHeaders + "Authorization: Bearer " + valid + "\r\n\r\n",
			405, "", [2]string{"Allow", "GET"}, false},
		{"Host x/net cannot parse, token in the query", "GET /ws?token=" + valid + " HTTP/1.1\r\nHost: 127.0.0.1:abc\r\n" + wsHeaders + "\r\n",
			400, "invalid_request", [2]string{}, false},
		{"Host x/net cannot parse, valid bearer", "GET /ws?x=1 HTTP/1.1\r\nHost: " + host + "x\r\n" + wsHeaders + "Authorization: Bearer " + valid + "\r\n\r\n",
			400, "invalid_request", [2]string{}, false},
		{"Connection: Upgrade on a second header line", get("/ws", "Upgrade: websocket\r\nConnection: keep-alive\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer "+valid+"\r\n"),
			426, "invalid_request", [2]string{"Upgrade", "websocket"}, false},
		{"CONNECT", "CONNECT " + host + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n", 405, "", [2]string{}, false},
		{"request line of garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "", [2]string{}, false},
		{"no Host", "GET /api/me HTTP/1.1\r\nAuthorization: Bearer " + valid + "\r\n\r\n", 400, "", [2]string{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.svc.Introspections()
			resp, body := rawExchange(t, host, tc.raw)
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d (%.200s); want %d", resp.StatusCode, body, tc.status)
			}
			if tc.errCode != "" {
				var b struct{ Error string }
				if err := json.Unmarshal([]byte(body), &b); err != nil || b.Error != tc.errCode {
					t.Errorf("body = %.200q; want error %q", body, tc.errCode)
				}
			}
			if tc.header[0] != "" && resp.Header.Get(tc.header[0]) != tc.header[1] {
				t.Errorf("%s = %q; want %q", tc.header[0], resp.Header.Get(tc.header[0]), tc.header[1])
			}
			if strings.Contains(body, valid) || len(body) > 4096 {
				t.Errorf("body echoes the request (%d bytes)", len(body))
			}
			if !tc.introspect && e.svc.Introspections() != before {
				t.Errorf("the token system was asked %d times; want 0", e.svc.Introspections()-before)
			}
		})
	}
	stop()
	// The log records the status sent, never 101 for a handshake refused.
	if !e.log.logged("method=HEAD path=/ws status=405") || e.log.logged("path=/ws status=101", "credential=bearer", "method=HEAD") {
		t.Errorf("the log has no line method=HEAD path=/ws status=405, or one with 101")
	}
}

// TestBadFramesOthersServed: after a good handshake, a client that sends
// invalid UTF-8, binary data, an oversized, unmasked or reserved frame, or a
// close code no peer may send, gets the close code RFC 6455 names, while a
// well-behaved client is served normally (TestBadFrames, in
// closing_test.go, covers the closing handshake of each case).
func TestBadFramesOthersServed(t *testing.T) {
	e := newEnv(t, withServer(func(c *server.Config) { c.MaxMessageBytes = 1024 }))
	tok := e.issue("alice", time.Hour, "ws")
	stop := wellBehaved(t, e)
	for _, tc := range []struct {
		name   string
		send   func(c *wsConn) error
		code   int
		reason string
	}{
		{"invalid UTF-8 text", func(c *wsConn) error { return c.WriteText("caf\xc3") }, server.CloseInvalidPayload, ""},
		{"invalid UTF-8 across fragments", func(c *wsConn) error {
			c.WriteFrame(0x1, false, []byte("ok \xe2\x82"))
			return c.WriteFrame(0x0, true, []byte("x"))
		}, server.CloseInvalidPayload, ""},
		// Binary frames: this server speaks JSON text (docs/REFERENCE.md), so binary
		// data is data it cannot accept, RFC 6455 §7.4.1's 1003.
		{"binary message", func(c *wsConn) error { return c.WriteFrame(0x2, true, []byte{0, 1, 2}) }, server.CloseUnsupportedData, ""},
		{"message over MaxMessageBytes", func(c *wsConn) error { return c.WriteText(strings.Repeat("a", 2048)) }, server.CloseMessageTooBig, ""},
		{"unmasked frame", func(c *wsConn) error {
			_, err := c.nc.Write([]byte{0x81, 0x02, 'h', 'i'})
			return err
		}, server.CloseProtocolError, ""},
		{"reserved opcode", func(c *wsConn) error { return c.WriteFrame(0x3, true, nil) }, server.CloseProtocolError, ""},
		{"close code 1005 on the wire", func(c *wsConn) error { return c.WriteClose(1005, "") }, server.CloseProtocolError, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, resp, _ := e.dial("/ws", bearer(tok))
			if c == nil {
				t.Fatalf("dial: %v; want 101", resp.Status)
			}
			if m, err := c.ReadJSON(5 * time.Second); err != nil || m["type"] != "welcome" {
				t.Fatalf("welcome = %v, %v", m, err)
			}
			if err := tc.send(c); err != nil {
				t.Fatal(err)
			}
			c.ExpectClose(t, 5*time.Second, tc.code, tc.reason)
			c.nc.Close()
		})
	}
	stop()
	waitFor(t, 5*time.Second, "every WebSocket to be released", func() bool { return e.srv.OpenConns() == 0 })
}

// countingHandler counts the requests that reach the server's handler, and
// among them those of the attackers, which carry an X-Slow header.
type countingHandler struct {
	next    http.Handler
	n, slow atomic.Int64
}

func (h *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.n.Add(1)
	if r.Header.Get("X-Slow") != "" || r.URL.Path == "/ws" && r.Header.Get("Authorization") == "" {
		h.slow.Add(1)
	}
	h.next.ServeHTTP(w, r)
}

// TestSlowlorisAndHalfOpen dribbles headers byte by byte and leaves
// connections half-open against an http.Server with a short
// ReadHeaderTimeout (cmd/wsauth sets 5s): each is dropped within the
// timeout, none reaches a handler, and a well-behaved client is served
// normally meanwhile.
func TestSlowlorisAndHalfOpen(t *testing.T) {
	e := newEnv(t)
	const readHeaderTimeout = 500 * time.Millisecond
	counter := &countingHandler{next: e.srv}
	slow := httptest.NewUnstartedServer(counter)
	slow.Config.ReadHeaderTimeout = readHeaderTimeout
	slow.Start()
	defer slow.Close()
	addr := strings.TrimPrefix(slow.URL, "http://")

	// The well-behaved client uses the slow-timeout server too.
	good := *e
	good.URL = slow.URL
	stop := wellBehaved(t, &good)

	const dribblers, halfOpen = 50, 200
	type result struct {
		what    string
		elapsed time.Duration
		got     string
	}
	results := make(chan result, dribblers+halfOpen)
	var wg sync.WaitGroup
	for i := range dribblers + halfOpen {
		wg.Go(func() {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				results <- result{what: "dial", got: err.Error()}
				return
			}
			defer nc.Close()
			start := time.Now()
			what := "half-open"
			if i < dribblers {
				what = "dribbler"
				// One byte every 20ms: the request would take seconds.
				go func() {
					req := "GET /api/me HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("s", 200) + "\r\n\r\n"
					for j := range len(req) {
						if _, err := nc.Write([]byte{req[j]}); err != nil {
							return
						}
						<-time.After(20 * time.Millisecond) // the attack's pace, not synchronization
					}
				}()
			} else if i%2 == 0 {
				nc.Write([]byte("GET /ws HTTP/1.1\r\n")) // a request line and nothing more
			}
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			b, _ := io.ReadAll(nc)
			results <- result{what: what, elapsed: time.Since(start), got: string(b)}
		})
	}
	wg.Wait()
	close(results)
	stop()
	for r := range results {
		switch {
		case r.what == "dial":
			t.Errorf("dial: %s", r.got)
		case r.elapsed > readHeaderTimeout+2*time.Second:
			t.Errorf("%s dropped after %v; want about ReadHeaderTimeout %v", r.what, r.elapsed, readHeaderTimeout)
		case r.got != "" && !strings.HasPrefix(r.got, "HTTP/1.1 4"):
			t.Errorf("%s got %.80q; want nothing or a 4xx", r.what, r.got)
		}
	}
	// Only the well-behaved client's requests reached the handler.
	if n := counter.slow.Load(); n != 0 {
		t.Errorf("%d of the attackers' requests reached the handler; want 0", n)
	}
	if n := counter.n.Load(); n == 0 {
		t.Errorf("no request reached the handler; want the well-behaved client's")
	}
	e.srv.Shutdown(t.Context())
}

// TestThrottleFailedAuthentications: past the burst of failures a client
// IP gets 429 with Retry-After before the token system is asked; a token
// that authenticated before is still served from that IP; a new token
// waits for the refill; another IP is not affected; a flood of one bad
// token from many IPs is cut by the per-token bucket.
func TestThrottleFailedAuthentications(t *testing.T) {
	clk := newTestClock()
	e := newEnv(t, withServer(func(c *server.Config) {
		c.FailureBurst = 5
		c.FailureRefill = 10 * time.Second
		c.Now = clk.Now
	}))
	known := e.issue("alice", time.Hour, "api")
	if status, _, _ := e.get("/api/me", bearer(known)); status != 200 {
		t.Fatalf("GET /api/me with alice's token: %d; want 200", status)
	}
	for i := range 5 {
		if status, _, _ := e.get("/api/me", bearer(randomToken())); status != 401 {
			t.Fatalf("bad token %d of the burst: %d; want 401", i+1, status)
		}
	}
	before := e.svc.Introspections()
	for _, tc := range []struct {
		name string
		h    http.Header
	}{
		{"a bad token", bearer(randomToken())},
		{"no token", nil},
		{"an empty bearer token", http.Header{"Authorization": {"Bearer "}}},
		{"a valid token never seen", bearer(e.issue("bob", time.Hour, "api"))},
	} {
		status, h, body := e.get("/api/me", tc.h)
		if status != 429 || h.Get("Retry-After") != "10" || !strings.Contains(body, `"too_many_requests"`) {
			t.Errorf("past the burst, %s: %d, Retry-After %q, %s; want 429, Retry-After 10, too_many_requests",
				tc.name, status, h.Get("Retry-After"), body)
		}
	}
	if n := e.svc.Introspections() - before; n != 0 {
		t.Errorf("the token system was asked %d times past the burst; want 0", n)
	}
	if status, _, _ := e.get("/api/me", bearer(known)); status != 200 {
		t.Errorf("a token that authenticated before, from the throttled IP: %d; want 200", status)
	}
	if c, resp, _ := e.dial("/ws", bearer(randomToken())); c != nil || resp.StatusCode != 429 {
		t.Errorf("WebSocket handshake with a bad token past the burst: %v; want 429", resp.Status)
	}

	// Other client IPs: 127.0.0.0/8 all reach the loopback server.
	from := func(ip byte, h http.Header) int {
		t.Helper()
		c := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, ip)}}).DialContext}, Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		req, _ := http.NewRequest("GET", e.URL+"/api/me", nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET from 127.0.0.%d: %v", ip, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if status := from(2, bearer(e.issue("carol", time.Hour, "api"))); status != 200 {
		t.Errorf("a valid token from another IP: %d; want 200", status)
	}
	// One bad token tried from many IPs: its own bucket empties.
	flood := randomToken()
	for ip := range byte(5) {
		if status := from(10+ip, bearer(flood)); status != 401 {
			t.Fatalf("the flood token from 127.0.0.%d: %d; want 401", 10+ip, status)
		}
	}
	before = e.svc.Introspections()
	if status := from(20, bearer(flood)); status != 429 {
		t.Errorf("the flood token from a sixth IP: %d; want 429 (its token bucket is empty)", status)
	}
	if status := from(20, bearer(randomToken())); status != 401 {
		t.Errorf("another bad token from that sixth IP: %d; want 401 (its IP bucket is full)", status)
	}
	if n := e.svc.Introspections() - before; n != 1 {
		t.Errorf("the token system was asked %d times; want 1 (the second bad token only)", n)
	}

	clk.Advance(10 * time.Second)
	if status, _, _ := e.get("/api/me", bearer(e.issue("dave", time.Hour, "api"))); status != 200 {
		t.Errorf("a new valid token after one refill: %d; want 200", status)
	}
}

// TestThrottleIPv6Per48: IPv6 clients are throttled per /64 and, with four
// bursts, per /48, so that an attacker routed a /48 cannot rotate through
// its /64s for a fresh burst each. The clients' addresses come from a
// trusted proxy's X-Forwarded-For.
func TestThrottleIPv6Per48(t *testing.T) {
	clk := newTestClock()
	trusted, _ := server.ParseTrustedProxies("127.0.0.1")
	e := newEnv(t, withServer(func(c *server.Config) {
		c.FailureBurst = 2
		c.FailureRefill = 10 * time.Second
		c.TrustedProxies = trusted
		c.Now = clk.Now
	}))
	from := func(ip string) http.Header {
		return http.Header{"Authorization": {"Bearer " + randomToken()}, "X-Forwarded-For": {ip}}
	}
	for sub := range 4 {
		for i := range 2 {
			if status, _, body := e.get("/api/me", from(fmt.Sprintf("2001:db8:1:%x::%x", sub, i+1))); status != 401 {
				t.Fatalf("bad token %d from /64 number %d of the /48: %d %s; want 401", i+1, sub+1, status, body)
			}
		}
	}
	before := e.svc.Introspections()
	if status, h, _ := e.get("/api/me", from("2001:db8:1:ff::1")); status != 429 || h.Get("Retry-After") != "10" {
		t.Errorf("a fifth /64 of a /48 that failed 8 times (4 bursts of 2): %d, Retry-After %q; want 429, Retry-After 10", status, h.Get("Retry-After"))
	}
	if n := e.svc.Introspections() - before; n != 0 {
		t.Errorf("the token system was asked %d times for the throttled /48; want 0", n)
	}
	if status, _, _ := e.get("/api/me", from("2001:db8:2:ff::1")); status != 401 {
		t.Errorf("a bad token from another /48: %d; want 401", status)
	}
	if status, _, _ := e.get("/api/me", http.Header{"Authorization": {"Bearer " + e.issue("alice", time.Hour, "api")}, "X-Forwarded-For": {"2001:db8:2:ff::1"}}); status != 200 {
		t.Errorf("a valid token from another /48: %d; want 200", status)
	}
}

// TestMaxConnsPerSubject: past MaxConnsPerSubject a subject's handshake is
// answered 429 before the upgrade; other subjects are not affected, and a
// closed connection frees its place.
func TestMaxConnsPerSubject(t *testing.T) {
	e := newEnv(t, withServer(func(c *server.Config) { c.MaxConnsPerSubject = 2 }))
	a1, a2 := e.issue("alice", time.Hour, "ws"), e.issue("alice", time.Hour, "ws")
	var open []*wsConn
	for _, tok := range []string{a1, a2} {
		c, resp, _ := e.dial("/ws", bearer(tok))
		if c == nil {
			t.Fatalf("alice's connection %d: %v; want 101", len(open)+1, resp.Status)
		}
		open = append(open, c)
	}
	c, resp, body := e.dial("/ws", bearer(a1))
	if c != nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "too_many_connections") {
		t.Fatalf("alice's third connection: %v %q; want 429 too_many_connections with Retry-After", resp.Status, body)
	}
	if c, resp, _ := e.dial("/ws", bearer(e.issue("bob", time.Hour, "ws"))); c == nil {
		t.Errorf("bob's connection while alice is at her cap: %v; want 101", resp.Status)
	} else {
		c.Close()
	}
	open[0].Close()
	waitFor(t, 5*time.Second, "alice's closed connection to be released", func() bool { return e.srv.OpenConns() == 1 })
	c, resp, _ = e.dial("/ws", bearer(a1))
	if c == nil {
		t.Fatalf("alice's connection after closing one: %v; want 101", resp.Status)
	}
	c.Close()
	open[1].Close()
}

// TestMessageLengthOverflow: a one-byte text fragment followed by a
// continuation frame that announces 2^63−1 bytes (the largest length RFC
// 6455 §5.2 allows) must be refused with 1009 like any message over the
// limit, however the lengths add up; the connection's access-log line, with
// its subject and close code, is written, and a well-behaved client is
// served all along.
func TestMessageLengthOverflow(t *testing.T) {
	e := newEnv(t, withServer(func(c *server.Config) { c.CloseTimeout = 500 * time.Millisecond }))
	stop := wellBehaved(t, e)
	c, _ := openWS(t, e, e.issue("mallory", time.Hour, "ws"))
	mask := []byte{0, 0, 0, 0}                    // a zero mask leaves the payload as written
	frames := append([]byte{0x01, 0x81}, mask...) // text, not final, 1 byte
	frames = append(frames, 'a')
	frames = append(frames, 0x80, 0x80|127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff) // continuation, final, 2^63−1 bytes
	frames = append(frames, mask...)
	writeRaw(t, c, frames)
	if code, _, _ := readClose(t, c, 5*time.Second); code != server.CloseMessageTooBig {
		t.Errorf("1-byte fragment, then a continuation of 2^63−1 bytes: close %d; want 1009", code)
	}
	expectEOF(t, c, 5*time.Second)
	waitFor(t, 5*time.Second, "the connection's access-log line", func() bool {
		return e.log.logged("path=/ws", "status=101", "sub=mallory", "close_code=1009")
	})
	stop()
}
