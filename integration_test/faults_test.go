package integration_test

import (
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
	"wsauth/tokens"
)

// flakySvc is the fake token system on a listener the test can take down
// and bring back on the same address, as a real one restarts. It counts
// the TCP connections open to it, to show that none leak.
type flakySvc struct {
	t    testing.TB
	svc  *faketokensvc.Service
	addr string

	mu   sync.Mutex
	hs   *http.Server
	open atomic.Int64 // TCP connections open to the fake
}

func newFlakySvc(t testing.TB) *flakySvc {
	t.Helper()
	f := &flakySvc{t: t, svc: faketokensvc.New(faketokensvc.Options{ClientID: "wsauth", ClientSecret: "test-secret"})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	f.serve(ln)
	t.Cleanup(f.down)
	return f
}

func (f *flakySvc) serve(ln net.Listener) {
	hs := &http.Server{Handler: f.svc.Handler(), ReadHeaderTimeout: 5 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				f.open.Add(1)
			case http.StateClosed, http.StateHijacked:
				f.open.Add(-1)
			}
		}}
	f.mu.Lock()
	f.hs = hs
	f.mu.Unlock()
	go hs.Serve(ln)
}

// down closes the listener and every connection: the token system is gone.
func (f *flakySvc) down() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hs != nil {
		f.hs.Close()
		f.hs = nil
	}
}

// up listens again on the same address.
func (f *flakySvc) up() {
	f.t.Helper()
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		f.t.Fatalf("listening again on %s: %v", f.addr, err)
	}
	f.serve(ln)
}

// newFlakyEnv is an env whose token system is a flakySvc, with a short
// introspection timeout and recheck interval.
func newFlakyEnv(t testing.TB, timeout, recheck time.Duration) (*env, *flakySvc, *http.Transport) {
	t.Helper()
	f := newFlakySvc(t)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	in := &tokens.Introspector{URL: "http://" + f.addr + "/introspect", ClientID: "wsauth", ClientSecret: "test-secret",
		HTTPClient: &http.Client{Transport: tr}, Timeout: timeout}
	e := &env{t: t, svc: f.svc, svcURL: "http://" + f.addr, log: &testLog{t: t}}
	e.srv = server.New(server.Config{
		Validator:    tokens.NewCache(in, tokens.CacheConfig{}),
		Logger:       slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Recheck:      recheck,
		FailureBurst: -1,
	})
	e.serve(e.srv, false, tr.CloseIdleConnections)
	return e, f, tr
}

// handshakeStream dials /ws in a loop until stop is closed, with a freshly
// issued valid token, a never-issued one and a revoked one, and reports any
// answer that is not the right one or 503. It closes every connection it
// opens.
type handshakeStream struct {
	e        *env
	stop     chan struct{}
	done     chan struct{}
	revoked  string
	mu       sync.Mutex
	wrong    []string
	counts   map[string]map[int]int // kind → status → count
	accepted atomic.Int64
	rounds   atomic.Int64
}

func startHandshakeStream(e *env) *handshakeStream {
	hs := &handshakeStream{e: e, stop: make(chan struct{}), done: make(chan struct{}),
		counts: map[string]map[int]int{"valid": {}, "unknown": {}, "revoked": {}}}
	hs.revoked = e.issue("mallory", time.Hour, "api", "ws")
	e.svc.Revoke(hs.revoked)
	go hs.run()
	return hs
}

func (hs *handshakeStream) run() {
	defer close(hs.done)
	for {
		select {
		case <-hs.stop:
			return
		default:
		}
		valid := hs.e.issue("stream", time.Hour, "ws")
		hs.try("valid", valid, http.StatusSwitchingProtocols)
		hs.try("unknown", randomToken(), http.StatusUnauthorized)
		hs.try("revoked", hs.revoked, http.StatusUnauthorized)
		hs.rounds.Add(1)
	}
}

// try dials with tok; want is the right answer, and 503 is always allowed.
func (hs *handshakeStream) try(kind, tok string, want int) {
	c, resp, _, err := hs.e.dialer.Dial(hs.e.URL+"/ws", bearer(tok))
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if err != nil {
		hs.wrong = append(hs.wrong, kind+": dial error "+err.Error())
		return
	}
	hs.counts[kind][resp.StatusCode]++
	if c != nil {
		hs.accepted.Add(1)
		c.Close()
	}
	if resp.StatusCode != want && resp.StatusCode != http.StatusServiceUnavailable {
		hs.wrong = append(hs.wrong, kind+": "+resp.Status)
	}
}

func (hs *handshakeStream) finish(t *testing.T) {
	t.Helper()
	close(hs.stop)
	<-hs.done
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, w := range hs.wrong {
		t.Errorf("handshake stream: %s; want the right answer or 503", w)
	}
	t.Logf("handshake stream answers: %v", hs.counts)
	// The revoked token's invalid answer is cached, so it may never see a
	// 503; the fresh ones must have seen the faults.
	for kind, want := range map[string]int{"valid": 101, "unknown": 401} {
		if hs.counts[kind][want] == 0 || hs.counts[kind][503] == 0 {
			t.Errorf("handshake stream %s: answers %v; want some %d and some 503 (the faults must have been seen)",
				kind, hs.counts[kind], want)
		}
	}
}

// TestTokenSystemFaults runs a stream of handshakes and keeps connections
// open while the token system goes down, comes back, turns slow, answers
// 500, answers garbage, hangs up mid-reply, and revokes a token it had
// called active. Every new request gets the right answer or 503, never a
// false 200 or 101; the first request after each recovery is served; open
// connections follow the recheck policy (kept while the token system
// cannot answer, closed 3000 on revocation or expiry); nothing leaks.
func TestTokenSystemFaults(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e, f, tr := newFlakyEnv(t, timeout, 100*time.Millisecond)

	// Connections open through every fault: one with a long token, one
	// whose token expires in the middle, one whose token is revoked.
	long := e.issue("alice", time.Hour, "api", "ws")
	keep, resp, _ := e.dial("/ws", bearer(long))
	if keep == nil {
		t.Fatalf("dial with a valid token: %v; want 101", resp.Status)
	}
	if m, err := keep.ReadJSON(5 * time.Second); err != nil || m["type"] != "welcome" {
		t.Fatalf("welcome = %v, %v", m, err)
	}
	expiring := e.issue("erin", 2*time.Second, "ws")
	exp, resp, _ := e.dial("/ws", bearer(expiring))
	if exp == nil {
		t.Fatalf("dial with a 2s token: %v; want 101", resp.Status)
	}
	expiredAt := time.Now().Add(2 * time.Second)

	stream := startHandshakeStream(e)
	// The stream must see healthy answers before the first fault.
	waitFor(t, 5*time.Second, "a first accepted handshake", func() bool { return stream.accepted.Load() > 0 })

	fresh := func(phase string, want int) {
		t.Helper()
		tok := e.issue("bob", time.Hour, "api")
		start := time.Now()
		status, h, body := e.get("/api/me", bearer(tok))
		if status != want {
			t.Errorf("%s: GET /api/me with a fresh valid token: status %d (%s); want %d", phase, status, body, want)
		}
		if want == 503 && h.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", phase)
		}
		if d := time.Since(start); d > timeout+2*time.Second {
			t.Errorf("%s: the answer took %v; want about the introspection timeout %v at most", phase, d, timeout)
		}
		if status, _, _ := e.get("/api/me", bearer(long)); status != 200 {
			t.Errorf("%s: GET /api/me with a token validated before: status %d; want 200 (a cached valid answer holds for its TTL)",
				phase, status)
		}
	}
	// waitStream lets the stream run a few rounds in the current state.
	waitStream := func() {
		t.Helper()
		n := stream.rounds.Load()
		waitFor(t, 10*time.Second, "the handshake stream to go on", func() bool { return stream.rounds.Load() >= n+3 })
	}

	for _, fault := range []struct {
		name    string
		on, off func()
	}{
		{"down", f.down, f.up},
		{"slow", func() { e.svc.SetFaults(faketokensvc.Faults{Latency: 3 * timeout}) }, nil},
		{"500", func() { e.svc.SetFaults(faketokensvc.Faults{Status: 500}) }, nil},
		{"garbage", func() { e.svc.SetFaults(faketokensvc.Faults{Garbage: true}) }, nil},
		{"hang-up", func() { e.svc.SetFaults(faketokensvc.Faults{HangUp: true}) }, nil},
	} {
		fault.on()
		fresh(fault.name, 503)
		waitStream()
		if fault.off != nil {
			fault.off()
		} else {
			e.svc.SetFaults(faketokensvc.Faults{})
		}
		fresh("first request after "+fault.name, 200)
		waitStream()
	}
	stream.finish(t)

	// Revocation of a token the token system had called active: the open
	// connection closes at the next recheck, and the recheck's answer
	// replaces the cached one, so new requests get 401 at once.
	revoked := e.issue("carol", time.Hour, "api", "ws")
	rc, resp, _ := e.dial("/ws", bearer(revoked))
	if rc == nil {
		t.Fatalf("dial with carol's token: %v; want 101", resp.Status)
	}
	if status, _, _ := e.get("/api/me", bearer(revoked)); status != 200 {
		t.Fatalf("GET /api/me with carol's token before revocation: %d; want 200", status)
	}
	e.svc.Revoke(revoked)
	rc.ExpectClose(t, 5*time.Second, server.CloseUnauthorized, "token revoked")
	if status, _, _ := e.get("/api/me", bearer(revoked)); status != 401 {
		t.Errorf("GET /api/me with carol's token after the recheck saw it revoked: %d; want 401", status)
	}

	// The expiring connection closed at its expiry, token system or not.
	exp.ExpectClose(t, time.Until(expiredAt)+5*time.Second, server.CloseUnauthorized, "token expired")
	// The long one survived every fault: the recheck keeps a connection
	// whose token the token system cannot judge.
	if err := keep.WriteText("still here"); err != nil {
		t.Fatal(err)
	}
	if m, err := keep.ReadJSON(5 * time.Second); err != nil || m["data"] != "still here" {
		t.Errorf("echo on the connection opened before the faults = %v, %v; want the echo", m, err)
	}
	keep.Close()
	exp.Close()
	rc.Close()

	waitFor(t, 5*time.Second, "every WebSocket to be released", func() bool { return e.srv.OpenConns() == 0 })
	waitFor(t, 5*time.Second, "every connection to the token system to close", func() bool {
		// Validations detached from their request may still return
		// connections to the pool.
		tr.CloseIdleConnections()
		return f.open.Load() == 0
	})
}

// TestTokenSystemDownAtStart: a server whose token system has never
// answered refuses with 503, and serves the first request after it comes up.
func TestTokenSystemDownAtStart(t *testing.T) {
	e, f, _ := newFlakyEnv(t, 300*time.Millisecond, time.Minute)
	f.down()
	tok := e.issue("alice", time.Hour, "api", "ws")
	for _, path := range []string{"/api/me", "/ws"} {
		var status int
		if path == "/ws" {
			c, resp, _ := e.dial(path, bearer(tok))
			if c != nil {
				t.Fatalf("dial /ws with the token system down: 101; want 503")
			}
			status = resp.StatusCode
		} else {
			status, _, _ = e.get(path, bearer(tok))
		}
		if status != 503 {
			t.Errorf("%s with the token system down: %d; want 503", path, status)
		}
	}
	f.up()
	if status, _, body := e.get("/api/me", bearer(tok)); status != 200 {
		t.Errorf("first GET /api/me after the token system came up: %d %s; want 200", status, body)
	}
	c, resp, _ := e.dial("/ws", bearer(tok))
	if c == nil {
		t.Fatalf("first dial after the token system came up: %v; want 101", resp.Status)
	}
	checkWelcomeAndEcho(t, c, "alice")
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
