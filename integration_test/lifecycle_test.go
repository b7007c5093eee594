package integration_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
)

// The tests of issue 4: a WebSocket stays authorized only as long as its
// token does, and neither a slow, dead or hostile client nor a restart
// leaves a connection or a goroutine behind. Each top-level test is
// sequential and checks for leaked goroutines (checkNoLeaks); its subtests
// run in parallel, each with its own server.

// slack is how late a timed event may arrive on a loaded machine (two
// cores, -race, other tests running).
const slack = time.Second

// openWS opens a WebSocket with tok as a bearer token and reads the welcome.
func openWS(t testing.TB, e *env, tok string) (*wsConn, map[string]any) {
	t.Helper()
	c, resp, body, err := e.dialer.Dial(e.URL+"/ws", http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	if c == nil {
		t.Fatalf("dial /ws: status %d %s; want 101", resp.StatusCode, body)
	}
	t.Cleanup(func() { c.nc.Close() })
	m, err := c.ReadJSON(5 * time.Second)
	if err != nil || m["type"] != "welcome" {
		t.Fatalf("first message = %v, %v; want the welcome", m, err)
	}
	return c, m
}

// expOf is the "exp" of a welcome or refreshed message.
func expOf(t testing.TB, m map[string]any) time.Time {
	t.Helper()
	exp, ok := m["exp"].(float64)
	if !ok {
		t.Fatalf("message %v has no exp", m)
	}
	return time.Unix(int64(exp), 0)
}

// issueExp is e.issue that also returns the token's expiry.
func (e *env) issueExp(sub string, ttl time.Duration, scopes ...string) (string, time.Time) {
	tok, exp := e.svc.Issue(sub, scopes, ttl)
	leakMu.Lock()
	issued = append(issued, tok)
	leakMu.Unlock()
	return tok, exp
}

// expectEcho sends data and checks that the server echoes it.
func expectEcho(t testing.TB, c *wsConn, data string) {
	t.Helper()
	if err := c.WriteText(data); err != nil {
		t.Fatalf("sending %.20q: %v", data, err)
	}
	m, err := c.ReadJSON(5 * time.Second)
	if err != nil {
		t.Fatalf("reading the echo of %.20q: %v", data, err)
	}
	if m["type"] != "echo" || m["data"] != data {
		t.Fatalf("answer to %.20q = %.200v; want an echo of it", data, m)
	}
}

// expectMsg sends msg and checks that the answer is exactly want.
func expectMsg(t testing.TB, c *wsConn, msg string, want map[string]any) {
	t.Helper()
	if err := c.WriteText(msg); err != nil {
		t.Fatalf("sending %s: %v", msg, err)
	}
	m, err := c.ReadJSON(5 * time.Second)
	if err != nil {
		t.Fatalf("reading the answer to %.40s: %v", msg, err)
	}
	if !maps.Equal(m, want) {
		t.Fatalf("answer to %.40s = %v; want %v", msg, m, want)
	}
}

func refreshMsg(tok string) string {
	b, _ := json.Marshal(map[string]string{"type": "refresh", "token": tok})
	return string(b)
}

// readClose reads until the server's close frame, answering it and any
// ping, and returns its code, reason and arrival time. A text message
// before it fails the test.
func readClose(t testing.TB, c *wsConn, d time.Duration) (int, string, time.Time) {
	t.Helper()
	msg, err := c.Read(d)
	var ce *wsCloseError
	if !errors.As(err, &ce) {
		t.Fatalf("waiting for a close frame: got message %.100q, error %v", msg, err)
	}
	return ce.Code, ce.Reason, time.Now()
}

// expectClose reads the server's close frame, checks its code and reason,
// and then that the server sends nothing more and closes the TCP
// connection: one close frame, never two (RFC 6455 §5.5.1).
func expectClose(t testing.TB, c *wsConn, d time.Duration, code int, reason string) time.Time {
	t.Helper()
	got, gotReason, at := readClose(t, c, d)
	if got != code || gotReason != reason {
		t.Errorf("close = %d %q; want %d %q", got, gotReason, code, reason)
	}
	expectEOF(t, c, 5*time.Second)
	return at
}

// expectEOF checks that the server closes the TCP connection within d
// without sending another frame, then closes the client's side too, as
// a client does once the server has closed.
func expectEOF(t testing.TB, c *wsConn, d time.Duration) {
	t.Helper()
	op, p, err := c.ReadFrame(d)
	c.nc.Close()
	if err == nil {
		t.Errorf("after the close frame: got frame op %d %q; want the TCP connection closed", op, p)
	} else if !errors.Is(err, io.EOF) {
		t.Errorf("after the close frame: %v; want EOF", err)
	}
}

// writeRaw sends bytes as they are: for frames no honest client sends.
func writeRaw(t testing.TB, c *wsConn, b []byte) {
	t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		t.Fatalf("writing raw bytes: %v", err)
	}
}

func withRecheck(d time.Duration) envOption {
	return withServer(func(c *server.Config) { c.Recheck = d })
}

func TestTokenExpiryCloses3000(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t)
	// The token system gives exp in whole seconds: this one ends 1 to 2 s
	// after now.
	c, welcome := openWS(t, e, e.issue("alice", 2*time.Second, "ws"))
	exp := expOf(t, welcome)
	expectEcho(t, c, "before expiry")
	at := expectClose(t, c, time.Until(exp)+slack+5*time.Second, server.CloseUnauthorized, "token expired")
	if late := at.Sub(exp); late < -50*time.Millisecond || late > slack {
		t.Errorf("close 3000 came %v after the token's expiry; want within %v", late, slack)
	}
}

func TestRecheck(t *testing.T) {
	checkNoLeaks(t)
	const recheck = 200 * time.Millisecond

	t.Run("revoked token closes its connections with 3000, others stay", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withRecheck(recheck))
		revoked, kept := e.issue("alice", time.Hour, "ws"), e.issue("bob", time.Hour, "ws")
		var gone, stay []*wsConn
		for range 3 {
			c, _ := openWS(t, e, revoked)
			gone = append(gone, c)
			c, _ = openWS(t, e, kept)
			stay = append(stay, c)
		}
		e.svc.Revoke(revoked)
		revokedAt := time.Now()
		for i, c := range gone {
			at := expectClose(t, c, recheck+slack+5*time.Second, server.CloseUnauthorized, "token revoked")
			if d := at.Sub(revokedAt); d > recheck+slack {
				t.Errorf("connection %d of the revoked token closed %v after the revocation; want within %v", i, d, recheck+slack)
			}
		}
		n := e.svc.Introspections()
		waitFor(t, 10*recheck+5*time.Second, "three more rechecks", func() bool { return e.svc.Introspections() >= n+3 })
		for _, c := range stay {
			expectEcho(t, c, "still authorized")
		}
	})

	t.Run("token that lost the ws scope closes with 3003", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withRecheck(recheck))
		tok := e.issue("alice", time.Hour, "api", "ws")
		c, _ := openWS(t, e, tok)
		if !e.svc.SetScopes(tok, []string{"api"}) {
			t.Fatal("SetScopes: token unknown to the fake")
		}
		changedAt := time.Now()
		at := expectClose(t, c, recheck+slack+5*time.Second, server.CloseForbidden, "insufficient scope")
		if d := at.Sub(changedAt); d > recheck+slack {
			t.Errorf("close 3003 came %v after the scope was removed; want within %v", d, recheck+slack)
		}
	})

	t.Run("token system down keeps connections until expiry and warns", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withRecheck(recheck))
		c, welcome := openWS(t, e, e.issue("alice", 4*time.Second, "ws"))
		exp := expOf(t, welcome)
		e.svc.SetFaults(faketokensvc.Faults{Status: http.StatusInternalServerError})
		n := e.svc.Introspections()
		waitFor(t, 10*recheck+5*time.Second, "three failed rechecks", func() bool { return e.svc.Introspections() >= n+3 })
		expectEcho(t, c, "still here while the token system is down")
		waitFor(t, 5*time.Second, "the recheck warning", func() bool {
			return e.log.logged("level=WARN", `msg="recheck: token system unavailable`)
		})

		// A new connection fails closed meanwhile.
		c2, resp, body, err := e.dialer.Dial(e.URL+"/ws", http.Header{"Authorization": {"Bearer " + e.issue("bob", time.Hour, "ws")}})
		switch {
		case err != nil:
			t.Fatalf("dial while the token system is down: %v", err)
		case c2 != nil:
			c2.nc.Close()
			t.Fatal("dial while the token system is down: upgraded; want 503")
		}
		checkRefusal(t, "WebSocket while the token system is down", resp.StatusCode, resp.Header, body, 503, "", "temporarily_unavailable", "")
		if ra := resp.Header.Get("Retry-After"); ra == "" {
			t.Error("503 while the token system is down: no Retry-After")
		}

		// Until its own expiry, not longer.
		at := expectClose(t, c, time.Until(exp)+slack+5*time.Second, server.CloseUnauthorized, "token expired")
		if late := at.Sub(exp); late < -50*time.Millisecond || late > slack {
			t.Errorf("close 3000 came %v after the token's expiry; want within %v", late, slack)
		}
	})
}

func TestRecheckCostsOneIntrospectionPerToken(t *testing.T) {
	checkNoLeaks(t)
	const (
		conns    = 1000
		nTokens  = 10
		parallel = 32
		recheck  = 400 * time.Millisecond
	)
	e := newEnv(t, withRecheck(recheck))
	toks := make([]string, nTokens)
	for i := range toks {
		toks[i] = e.issue("user"+string(rune('a'+i)), time.Hour, "ws")
	}

	openStart := time.Now()
	open := make([]*wsConn, conns)
	t.Cleanup(func() {
		for _, c := range open {
			if c != nil {
				c.nc.Close()
			}
		}
	})
	errc := make(chan error, conns)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range jobs {
				c, resp, body, err := e.dialer.Dial(e.URL+"/ws", http.Header{"Authorization": {"Bearer " + toks[i%nTokens]}})
				switch {
				case err != nil:
					errc <- err
					continue
				case c == nil:
					errc <- errors.New(resp.Status + " " + body)
					continue
				}
				open[i] = c
				if m, err := c.ReadJSON(10 * time.Second); err != nil || m["type"] != "welcome" {
					errc <- errors.New("no welcome")
				}
			}
		})
	}
	for i := range conns {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("opening %d connections: %v", conns, err)
	}
	t.Logf("opened %d connections in %v", conns, time.Since(openStart).Round(time.Millisecond))
	if n := e.srv.OpenConns(); n != conns {
		t.Fatalf("OpenConns = %d; want %d", n, conns)
	}

	// Line up with the sweeps. Each asks about each token once, and so did
	// the connections' first validations (single-flighted, then cached):
	// the counter rests at a multiple of nTokens between sweeps.
	count := e.svc.Introspections
	var n0 int64
	start := count()
	waitFor(t, 5*recheck+5*time.Second, "a recheck sweep", func() bool {
		n0 = count()
		return n0 > start && n0%nTokens == 0
	})
	// Sweeps come every recheck: three more by 3.5 intervals from the one
	// just seen, and the fourth not before 4.
	window := 3*recheck + recheck/2
	<-time.After(window)
	got := count() - n0
	t.Logf("%d introspections for %d connections over %d tokens in %v (3 recheck intervals of %v)",
		got, conns, nTokens, window, recheck)
	if got > 3*nTokens || got < nTokens {
		t.Errorf("%d introspections in 3 recheck intervals; want at most %d: one per token per interval", got, 3*nTokens)
	}

	// Close politely, as many at once.
	jobs = make(chan int)
	for range parallel {
		wg.Go(func() {
			for i := range jobs {
				open[i].Close()
			}
		})
	}
	for i := range conns {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	waitFor(t, 10*time.Second, "every connection to end", func() bool { return e.srv.OpenConns() == 0 })
}

func TestRefresh(t *testing.T) {
	checkNoLeaks(t)

	t.Run("same subject outlives the old token, then closes at the new expiry", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, welcome := openWS(t, e, e.issue("alice", 2*time.Second, "ws"))
		oldExp := expOf(t, welcome)
		tok, newExp := e.issueExp("alice", 4*time.Second, "ws")
		expectRefreshed(t, c, refreshMsg(tok), newExp, time.Now)

		// Keep talking until well past the old expiry.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for time.Now().Before(oldExp.Add(300 * time.Millisecond)) {
			expectEcho(t, c, "on the new token")
			<-tick.C
		}
		at := expectClose(t, c, time.Until(newExp)+slack+5*time.Second, server.CloseUnauthorized, "token expired")
		if late := at.Sub(newExp.Truncate(time.Second)); late < -50*time.Millisecond || late > slack {
			t.Errorf("close 3000 came %v after the new token's expiry; want within %v", late, slack)
		}
	})

	t.Run("rechecks follow the new token", func(t *testing.T) {
		t.Parallel()
		const recheck = 200 * time.Millisecond
		e := newEnv(t, withRecheck(recheck))
		old := e.issue("alice", time.Hour, "ws")
		c, _ := openWS(t, e, old)
		tok, exp := e.issueExp("alice", time.Hour, "ws")
		expectRefreshed(t, c, refreshMsg(tok), exp, time.Now)

		e.svc.Revoke(old)
		n := e.svc.Introspections()
		waitFor(t, 10*recheck+5*time.Second, "three rechecks", func() bool { return e.svc.Introspections() >= n+3 })
		expectEcho(t, c, "the old token is revoked, not mine")

		e.svc.Revoke(tok)
		expectClose(t, c, recheck+slack+5*time.Second, server.CloseUnauthorized, "token revoked")
	})

	t.Run("another subject's token is refused like an invalid one", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
		invalid := map[string]any{"type": "error", "error": "invalid_token"}
		expectMsg(t, c, refreshMsg(e.issue("mallory", time.Hour, "ws")), invalid)
		expectMsg(t, c, refreshMsg(randomToken()), invalid)
		expectEcho(t, c, "still open, as alice")
		tok, exp := e.issueExp("alice", 2*time.Hour, "ws")
		expectRefreshed(t, c, refreshMsg(tok), exp, time.Now)
	})

	t.Run("refreshes go through the failure throttle", func(t *testing.T) {
		t.Parallel()
		clk := newTestClock()
		e := newEnv(t, withServer(func(c *server.Config) {
			c.FailureBurst = 3
			c.FailureRefill = 10 * time.Second
			c.Now = clk.Now
		}))
		c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
		for range 3 {
			expectMsg(t, c, refreshMsg(randomToken()), map[string]any{"type": "error", "error": "invalid_token"})
		}
		before := e.svc.Introspections()
		throttled := map[string]any{"type": "error", "error": "too_many_requests", "retry_after": float64(10)}
		expectMsg(t, c, refreshMsg(randomToken()), throttled)
		expectMsg(t, c, refreshMsg(e.issue("mallory", time.Hour, "ws")), throttled)
		if n := e.svc.Introspections() - before; n != 0 {
			t.Errorf("past the burst, refreshes asked the token system %d times; want 0", n)
		}
		// The same IP's HTTP requests share the bucket.
		if status, h, body := e.get("/api/me", bearer(randomToken())); status != 429 || h.Get("Retry-After") != "10" {
			t.Errorf("GET /api/me with a bad token from the socket's IP after failed refreshes: %d %s; want 429, Retry-After 10", status, body)
		}
		expectEcho(t, c, "still open")
		clk.Advance(10 * time.Second)
		tok, exp := e.issueExp("alice", 2*time.Hour, "ws")
		expectRefreshed(t, c, refreshMsg(tok), exp, clk.Now)
	})

	t.Run("one connection's refreshes are rate limited", func(t *testing.T) {
		t.Parallel()
		clk := newTestClock()
		e := newEnv(t, withServer(func(c *server.Config) { c.Now = clk.Now })) // failure throttle off
		c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
		tok, exp := e.issueExp("alice", 2*time.Hour, "ws")
		for range 10 {
			expectRefreshed(t, c, refreshMsg(tok), exp, clk.Now)
		}
		before := e.svc.Introspections()
		expectMsg(t, c, refreshMsg(randomToken()), map[string]any{"type": "error", "error": "too_many_requests", "retry_after": float64(60)})
		if n := e.svc.Introspections() - before; n != 0 {
			t.Errorf("past the connection's refresh burst the token system was asked %d times; want 0", n)
		}
		clk.Advance(30 * time.Second)
		expectMsg(t, c, refreshMsg(tok), map[string]any{"type": "error", "error": "too_many_requests", "retry_after": float64(30)})
		clk.Advance(30 * time.Second)
		expectRefreshed(t, c, refreshMsg(tok), exp, clk.Now)
		// Another connection of the same client has its own allowance.
		c2, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
		expectRefreshed(t, c2, refreshMsg(tok), exp, clk.Now)
	})

	t.Run("failed refreshes answer an error and keep the old token", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, welcome := openWS(t, e, e.issue("alice", 3*time.Second, "ws"))
		exp := expOf(t, welcome)
		revoked := e.issue("alice", time.Hour, "ws")
		e.svc.Revoke(revoked)
		errMsg := func(code string, retryAfter int) map[string]any {
			m := map[string]any{"type": "error", "error": code}
			if retryAfter > 0 {
				m["retry_after"] = float64(retryAfter)
			}
			return m
		}
		for _, tc := range []struct {
			name       string
			msg        string
			faults     faketokensvc.Faults
			want       string
			retryAfter int // seconds, as the HTTP answer's Retry-After
		}{
			{"garbage", refreshMsg("not a token at all"), faketokensvc.Faults{}, "invalid_token", 0},
			{"no token", `{"type":"refresh"}`, faketokensvc.Faults{}, "invalid_token", 0},
			{"unknown", refreshMsg(strings.Repeat("A", 43)), faketokensvc.Faults{}, "invalid_token", 0},
			{"revoked", refreshMsg(revoked), faketokensvc.Faults{}, "invalid_token", 0},
			{"expired", refreshMsg(e.issue("alice", 0, "ws")), faketokensvc.Faults{}, "invalid_token", 0},
			{"no ws scope", refreshMsg(e.issue("alice", time.Hour, "api")), faketokensvc.Faults{}, "insufficient_scope", 0},
			{"token system down", refreshMsg(e.issue("alice", time.Hour, "ws")),
				faketokensvc.Faults{Status: http.StatusServiceUnavailable}, "temporarily_unavailable", 5},
			{"token system answers garbage", refreshMsg(e.issue("alice", time.Hour, "ws")),
				faketokensvc.Faults{Garbage: true}, "temporarily_unavailable", 5},
		} {
			e.svc.SetFaults(tc.faults)
			expectMsg(t, c, tc.msg, errMsg(tc.want, tc.retryAfter))
			e.svc.SetFaults(faketokensvc.Faults{})
			expectEcho(t, c, "still open after "+tc.name)
		}
		// The old token's expiry still holds.
		at := expectClose(t, c, time.Until(exp)+slack+5*time.Second, server.CloseUnauthorized, "token expired")
		if late := at.Sub(exp); late < -50*time.Millisecond || late > slack {
			t.Errorf("close 3000 came %v after the old token's expiry; want within %v", late, slack)
		}
	})
}

func TestLimits(t *testing.T) {
	checkNoLeaks(t)

	type frame struct {
		op   byte
		fin  bool
		size int
	}
	for _, tc := range []struct {
		name   string
		limit  int // MaxMessageBytes; 0 for the default
		frames []frame
		want   int // close code; 0 for an echo of the whole message
	}{
		{"default limit, 64 KiB echoed", 0, []frame{{0x1, true, 64 << 10}}, 0},
		{"default limit, 64 KiB + 1", 0, []frame{{0x1, true, 64<<10 + 1}}, server.CloseMessageTooBig},
		{"1 KiB limit, 1025 bytes", 1024, []frame{{0x1, true, 1025}}, server.CloseMessageTooBig},
		{"1 KiB limit, fragments summing to 1200", 1024, []frame{{0x1, false, 400}, {0x0, false, 400}, {0x0, true, 400}}, server.CloseMessageTooBig},
		{"1 KiB limit, fragments summing to 1024", 1024, []frame{{0x1, false, 512}, {0x0, false, 0}, {0x0, true, 512}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withServer(func(c *server.Config) { c.MaxMessageBytes = tc.limit }))
			c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
			var whole strings.Builder
			for i, f := range tc.frames {
				p := strings.Repeat(string(rune('a'+i)), f.size)
				whole.WriteString(p)
				if err := c.WriteFrame(f.op, f.fin, []byte(p)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.want != 0 {
				expectClose(t, c, 5*time.Second, tc.want, "message larger than the server accepts")
				return
			}
			m, err := c.ReadJSON(5 * time.Second)
			if err != nil || m["type"] != "echo" || m["data"] != whole.String() {
				t.Fatalf("answer to a %d-byte message = %.100v, %v; want it echoed whole", whole.Len(), m, err)
			}
		})
	}

	t.Run("fragments are reassembled, with a ping between them", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
		parts := []string{"hel", "lo, wor", "ld \xc3", "\xa9"} // é split across two fragments
		for i, p := range parts {
			op := byte(0x0)
			if i == 0 {
				op = 0x1
			}
			if err := c.WriteFrame(op, i == len(parts)-1, []byte(p)); err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				if err := c.WriteFrame(0x9, true, []byte("between")); err != nil {
					t.Fatal(err)
				}
				op, p, err := c.ReadFrame(5 * time.Second)
				if err != nil || op != 0xA || string(p) != "between" {
					t.Fatalf("answer to a ping between fragments = op %d %q, %v; want a pong with its payload", op, p, err)
				}
			}
		}
		m, err := c.ReadJSON(5 * time.Second)
		if err != nil || m["type"] != "echo" || m["data"] != "hello, world é" {
			t.Fatalf("answer to a fragmented message = %v, %v; want it echoed whole", m, err)
		}
	})

	t.Run("a client that stops reading is dropped after WriteTimeout", func(t *testing.T) {
		t.Parallel()
		const writeTimeout = 300 * time.Millisecond
		e := newEnv(t, withServer(func(c *server.Config) { c.WriteTimeout = writeTimeout }))
		c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
		c.nc.(*net.TCPConn).SetReadBuffer(4 << 10) // fill up sooner
		// Every message asks for a 16 KiB echo that the client never reads.
		msg := []byte(strings.Repeat("x", 16<<10))
		spamDone := make(chan error, 1)
		start := time.Now()
		go func() {
			for {
				if err := c.WriteFrame(0x1, true, msg); err != nil {
					spamDone <- err
					return
				}
			}
		}()
		waitFor(t, 10*time.Second, "the server to drop the client that does not read", func() bool { return e.srv.OpenConns() == 0 })
		t.Logf("dropped %v after the client stopped reading", time.Since(start).Round(time.Millisecond))
		c.nc.Close()
		if err := <-spamDone; err == nil {
			t.Error("writes to a dropped connection kept succeeding")
		}
	})

	t.Run("a silent peer is dropped after PingInterval+WriteTimeout", func(t *testing.T) {
		t.Parallel()
		const ping, write = 200 * time.Millisecond, 200 * time.Millisecond
		e := newEnv(t, withServer(func(c *server.Config) { c.PingInterval, c.WriteTimeout = ping, write }))
		tok := e.issue("alice", time.Hour, "ws")
		start := time.Now() // before the server can set its first read deadline
		c, _ := openWS(t, e, tok)
		// Read without answering: pings arrive, then the server hangs up.
		pings := 0
		for {
			op, _, err := c.ReadFrame(ping + write + slack + 5*time.Second)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("silent peer: %v; want the server to close the connection", err)
				}
				break
			}
			if op != 0x9 {
				t.Fatalf("silent peer got frame op %d; want only pings", op)
			}
			pings++
		}
		took := time.Since(start)
		if pings == 0 || took < ping+write || took > ping+write+slack {
			t.Errorf("silent peer dropped after %v and %d pings; want ≥1 ping and %v (+%v)", took, pings, ping+write, slack)
		}
		waitFor(t, 5*time.Second, "the server to forget the silent peer", func() bool { return e.srv.OpenConns() == 0 })
	})

	t.Run("a peer that answers pings stays", func(t *testing.T) {
		t.Parallel()
		const ping, write = 300 * time.Millisecond, 500 * time.Millisecond
		e := newEnv(t, withServer(func(c *server.Config) { c.PingInterval, c.WriteTimeout = ping, write }))
		c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
		// Answer pings, send nothing else, for three idle periods.
		pings := 0
		for deadline := time.Now().Add(3 * (ping + write)); ; {
			op, p, err := c.ReadFrame(time.Until(deadline))
			if isTimeout(err) {
				break
			}
			if err != nil || op != 0x9 {
				t.Fatalf("quiet peer answering pings: got op %d %q, %v; want only pings", op, p, err)
			}
			pings++
			if err := c.WriteFrame(0xA, true, p); err != nil {
				t.Fatal(err)
			}
		}
		if pings < 3 {
			t.Errorf("%d pings in %v with PingInterval %v; want at least 3", pings, 3*(ping+write), ping)
		}
		expectEcho(t, c, "still here")
	})

	t.Run("MaxConns answers 503 before the upgrade", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withServer(func(c *server.Config) { c.MaxConns = 2 }))
		tok := e.issue("alice", time.Hour, "ws")
		first, _ := openWS(t, e, tok)
		openWS(t, e, tok)
		c, resp, body, err := e.dialer.Dial(e.URL+"/ws", http.Header{"Authorization": {"Bearer " + tok}})
		switch {
		case err != nil:
			t.Fatal(err)
		case c != nil:
			c.nc.Close()
			t.Fatal("third connection with MaxConns 2: upgraded; want 503")
		}
		checkRefusal(t, "third WebSocket with MaxConns 2", resp.StatusCode, resp.Header, body, 503, "", "temporarily_unavailable", tok)
		if ra := resp.Header.Get("Retry-After"); ra == "" {
			t.Error("503 for MaxConns: no Retry-After")
		}
		first.Close()
		waitFor(t, 5*time.Second, "a slot to free", func() bool { return e.srv.OpenConns() == 1 })
		openWS(t, e, tok)
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestClosingHandshake(t *testing.T) {
	checkNoLeaks(t)

	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"1000 with a reason", append([]byte{0x03, 0xe8}, "bye"...)},
		{"4001", []byte{0x0f, 0xa1}},
		{"no status", nil},
	} {
		t.Run("client's close "+tc.name+" is echoed", func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
			if err := c.WriteFrame(0x8, true, tc.payload); err != nil {
				t.Fatal(err)
			}
			op, p, err := c.ReadFrame(5 * time.Second)
			if err != nil || op != 0x8 || string(p[:min(len(p), 2)]) != string(tc.payload[:min(len(tc.payload), 2)]) {
				t.Fatalf("answer to close %x = op %d %x, %v; want a close frame with its code", tc.payload, op, p, err)
			}
			expectEOF(t, c, 5*time.Second)
		})
	}

	// After its close frame the server waits for the client's, up to
	// CloseTimeout, so that the frame is not lost to a reset (RFC 6455
	// §7.1.1); it closes the TCP connection as soon as the client answers.
	const closeTimeout = 1500 * time.Millisecond
	triggers := []struct {
		name string
		code int
		do   func(t *testing.T, e *env, c *wsConn, tok string)
	}{
		{"binary message", server.CloseUnsupportedData, func(t *testing.T, e *env, c *wsConn, tok string) {
			if err := c.WriteFrame(0x2, true, []byte{1, 2, 3}); err != nil {
				t.Fatal(err)
			}
		}},
		{"revocation", server.CloseUnauthorized, func(t *testing.T, e *env, c *wsConn, tok string) { e.svc.Revoke(tok) }},
	}
	for _, tr := range triggers {
		for _, answer := range []bool{true, false} {
			name := "after close on " + tr.name + ", a client that answers"
			if !answer {
				name = "after close on " + tr.name + ", a client that never answers"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, withServer(func(c *server.Config) { c.CloseTimeout, c.Recheck = closeTimeout, 100*time.Millisecond }))
				tok := e.issue("alice", time.Hour, "ws")
				c, _ := openWS(t, e, tok)
				tr.do(t, e, c, tok)
				op, p, err := c.ReadFrame(5 * time.Second)
				if err != nil || op != 0x8 || len(p) < 2 || int(binary.BigEndian.Uint16(p)) != tr.code {
					t.Fatalf("after %s: frame op %d %q, %v; want close %d", tr.name, op, p, err, tr.code)
				}
				closeAt := time.Now()
				if answer {
					if err := c.WriteFrame(0x8, true, p[:2]); err != nil {
						t.Fatal(err)
					}
				}
				expectEOF(t, c, closeTimeout+5*time.Second)
				took := time.Since(closeAt)
				switch {
				case answer && took > closeTimeout/2:
					t.Errorf("client answered the close at once, server closed TCP after %v; want at once, not after CloseTimeout %v", took, closeTimeout)
				case !answer && (took < closeTimeout/2 || took > closeTimeout+slack):
					t.Errorf("client never answered the close, server closed TCP after %v; want CloseTimeout %v", took, closeTimeout)
				}
				waitFor(t, 5*time.Second, "the server to forget the connection", func() bool { return e.srv.OpenConns() == 0 })
			})
		}
	}

	t.Run("one close frame when the client's close crosses the server's", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withRecheck(50*time.Millisecond))
		tok := e.issue("alice", time.Hour, "ws")
		c, _ := openWS(t, e, tok)
		e.svc.Revoke(tok)
		if err := c.WriteClose(4000, "leaving"); err != nil {
			t.Fatal(err)
		}
		op, _, err := c.ReadFrame(5 * time.Second)
		if err != nil || op != 0x8 {
			t.Fatalf("after crossing closes: op %d, %v; want a close frame", op, err)
		}
		expectEOF(t, c, 5*time.Second)
	})
}

func TestBadFrames(t *testing.T) {
	checkNoLeaks(t)
	mask := []byte{0, 0, 0, 0} // a zero mask leaves the payload as written
	masked := func(b0 byte, payload string) []byte {
		return append(append([]byte{b0, 0x80 | byte(len(payload))}, mask...), payload...)
	}
	for _, tc := range []struct {
		name  string
		bytes []byte
		code  int
		tls   bool
	}{
		{"text that is not UTF-8", masked(0x81, "ok \xff\xfe"), server.CloseInvalidPayload, false},
		{"fragments that end inside a UTF-8 sequence", append(masked(0x01, "ok"), masked(0x80, " \xc3")...), server.CloseInvalidPayload, false},
		{"binary message", masked(0x82, "\x00\x01"), server.CloseUnsupportedData, false},
		{"unmasked frame", []byte("\x81\x05hello"), server.CloseProtocolError, false},
		{"unmasked frame over TLS", []byte("\x81\x05hello"), server.CloseProtocolError, true},
		{"binary message over TLS", masked(0x82, "\x00\x01"), server.CloseUnsupportedData, true},
		{"RSV1 without an extension", masked(0xc1, "hello"), server.CloseProtocolError, false},
		{"RSV3 without an extension", masked(0x91, "hello"), server.CloseProtocolError, false},
		{"unknown data opcode 3", masked(0x83, "hello"), server.CloseProtocolError, false},
		{"unknown control opcode 11", masked(0x8b, "hello"), server.CloseProtocolError, false},
		{"continuation without a message", masked(0x80, "hello"), server.CloseProtocolError, false},
		{"text inside a fragmented message", append(masked(0x01, "a"), masked(0x81, "b")...), server.CloseProtocolError, false},
		{"fragmented ping", masked(0x09, "hi"), server.CloseProtocolError, false},
		{"close code 1005", masked(0x88, "\x03\xed"), server.CloseProtocolError, false},
		{"close reason not UTF-8", masked(0x88, "\x03\xe8\xff"), server.CloseInvalidPayload, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A long CloseTimeout: the client below answers, so the server
			// must close at once, even when the stream is garbage.
			opts := []envOption{withServer(func(c *server.Config) { c.CloseTimeout = 10 * time.Second })}
			if tc.tls {
				opts = append(opts, withTLS())
			}
			e := newEnv(t, opts...)
			c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
			writeRaw(t, c, tc.bytes)
			code, _, at := readClose(t, c, 5*time.Second)
			if code != tc.code {
				t.Errorf("close = %d; want %d", code, tc.code)
			}
			expectEOF(t, c, 15*time.Second)
			if d := time.Since(at); d > slack {
				t.Errorf("server closed TCP %v after the client answered its close; want at once", d)
			}
			waitFor(t, 5*time.Second, "the server to forget the connection", func() bool { return e.srv.OpenConns() == 0 })
		})
	}
}

func TestShutdown(t *testing.T) {
	checkNoLeaks(t)

	t.Run("100 connections read 1001 and Shutdown reports them", func(t *testing.T) {
		t.Parallel()
		const n = 100
		e := newEnv(t, withServer(func(c *server.Config) { c.CloseTimeout = 10 * time.Second }))
		tok := e.issue("alice", time.Hour, "ws")
		type result struct {
			code   int
			reason string
			err    error
		}
		results := make(chan result, n)
		for range n {
			c, _ := openWS(t, e, tok)
			go func() {
				_, err := c.Read(10 * time.Second)
				var ce *wsCloseError
				if !errors.As(err, &ce) {
					results <- result{err: err}
					return
				}
				_, _, err = c.ReadFrame(10 * time.Second)
				if errors.Is(err, io.EOF) {
					err = nil
				}
				results <- result{ce.Code, ce.Reason, err}
			}()
		}
		const deadline = 5 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start := time.Now()
		closed, err := e.srv.Shutdown(ctx)
		took := time.Since(start)
		if closed != n || err != nil || took > deadline {
			t.Errorf("Shutdown = %d, %v after %v; want %d, nil within %v", closed, err, took, n, deadline)
		}
		t.Logf("Shutdown closed %d connections in %v", closed, took.Round(time.Millisecond))
		for range n {
			r := <-results
			if r.code != server.CloseGoingAway || r.reason != "server shutting down" || r.err != nil {
				t.Errorf("client saw close %d %q, then %v; want 1001 \"server shutting down\", then EOF", r.code, r.reason, r.err)
			}
		}
		if open := e.srv.OpenConns(); open != 0 {
			t.Errorf("OpenConns after Shutdown = %d; want 0", open)
		}
		c, resp, body, err := e.dialer.Dial(e.URL+"/ws", http.Header{"Authorization": {"Bearer " + tok}})
		switch {
		case err != nil:
			t.Fatal(err)
		case c != nil:
			c.nc.Close()
			t.Fatal("WebSocket after Shutdown: upgraded; want 503")
		}
		checkRefusal(t, "WebSocket after Shutdown", resp.StatusCode, resp.Header, body, 503, "", "temporarily_unavailable", tok)
	})

	t.Run("a client that never answers is dropped at the deadline", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withServer(func(c *server.Config) { c.CloseTimeout = time.Minute }))
		c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
		shutdownMissesDeadline(t, e, 300*time.Millisecond)
		if open := e.srv.OpenConns(); open != 0 {
			t.Errorf("OpenConns after Shutdown = %d; want 0", open)
		}
		op, p, err := c.ReadFrame(5 * time.Second)
		if err != nil || op != 0x8 || len(p) < 2 || binary.BigEndian.Uint16(p) != server.CloseGoingAway {
			t.Errorf("unresponsive client: frame op %d %q, %v; want close 1001", op, p, err)
		}
	})

	t.Run("a client that stopped reading does not hold Shutdown past its deadline", func(t *testing.T) {
		t.Parallel()
		// The server's writes to this client wait up to a minute.
		e := newEnv(t, withServer(func(c *server.Config) { c.WriteTimeout = time.Minute }))
		c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
		c.nc.(*net.TCPConn).SetReadBuffer(4 << 10)
		stalled := stallServer(t, c)
		shutdownMissesDeadline(t, e, 300*time.Millisecond)
		c.nc.Close()
		<-stalled
	})
}

// stallServer makes the server block writing to c: it sends messages whose
// echoes it never reads until the socket buffers are full and its own
// writes stop going through. The returned channel is closed when its
// writing goroutine has ended, which closing c.nc ensures.
func stallServer(t *testing.T, c *wsConn) <-chan struct{} {
	t.Helper()
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		msg := []byte(strings.Repeat("x", 16<<10))
		for c.WriteFrame(0x1, true, msg) == nil {
			sent.Add(1)
		}
	}()
	// Stalled: no write went through for half a second.
	last, since := int64(-1), time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(20 * time.Second); time.Since(since) < 500*time.Millisecond; <-tick.C {
		if n := sent.Load(); n != last {
			last, since = n, time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatal("the server kept reading a client that never reads for 20s")
		}
	}
	return done
}

// shutdownMissesDeadline shuts e's server down with a deadline that its one
// connection cannot meet, and checks that Shutdown reports it and returns
// at the deadline anyway, not when the connection gives up.
func shutdownMissesDeadline(t *testing.T, e *env, deadline time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	closed, err := e.srv.Shutdown(ctx)
	took := time.Since(start)
	if closed != 1 || !errors.Is(err, context.DeadlineExceeded) || took > deadline+slack {
		t.Errorf("Shutdown = %d, %v after %v; want 1, deadline exceeded, within %v", closed, err, took, deadline+slack)
	}
}

// TestNothingHandledAfterServersClose: once the server has sent its close
// frame, it reads only to find the client's close (RFC 6455 §1.4): the
// messages a client sends meanwhile, refreshes included, reach no handler
// and cost no call to the token system, and the closing handshake still
// completes at once when the client answers.
func TestNothingHandledAfterServersClose(t *testing.T) {
	checkNoLeaks(t)
	// Recheck stays at its default (60s), so that no sweep asks the token
	// system while the test counts; the close comes from the token's
	// expiry. A long CloseTimeout shows whether the server read the
	// client's close or gave up waiting for it.
	const closeTimeout = 10 * time.Second
	e := newEnv(t, withServer(func(c *server.Config) { c.CloseTimeout = closeTimeout }))
	tok, exp := e.issueExp("alice", time.Second, "ws")
	c, _ := openWS(t, e, tok)
	var payload []byte
	for {
		op, p, err := c.ReadFrame(time.Until(exp) + slack + 5*time.Second)
		if err != nil {
			t.Fatalf("waiting for the server's close at the token's expiry: %v", err)
		}
		if op == 0x8 {
			payload = p
			break
		}
	}
	if len(payload) < 2 || binary.BigEndian.Uint16(payload) != server.CloseUnauthorized || string(payload[2:]) != "token expired" {
		t.Fatalf("server's close = %q; want 3000 \"token expired\"", payload)
	}

	before := e.svc.Introspections()
	for i := range 10 {
		fresh := e.issue("alice", time.Hour, "ws") // never seen: a refresh would ask the token system
		if err := c.WriteText(refreshMsg(fresh)); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteText(fmt.Sprintf("message %d after the close", i)); err != nil {
			t.Fatal(err)
		}
	}
	m := refreshMsg(e.issue("alice", time.Hour, "ws"))
	c.WriteFrame(0x1, false, []byte(m[:10]))
	c.WriteFrame(0x9, true, []byte("ping"))
	c.WriteFrame(0x0, true, []byte(m[10:]))
	if err := c.WriteFrame(0x8, true, payload[:2]); err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	expectEOF(t, c, closeTimeout+5*time.Second)
	if d := time.Since(answered); d > slack {
		t.Errorf("server closed TCP %v after the client answered its close; want at once, not after CloseTimeout", d)
	}
	if n := e.svc.Introspections() - before; n != 0 {
		t.Errorf("after the server's close, the client's refreshes made %d calls to the token system; want 0", n)
	}
	waitFor(t, 5*time.Second, "the connection's access-log line", func() bool {
		return e.log.logged("path=/ws", "status=101", "sub=alice", "close_code=3000")
	})
}
