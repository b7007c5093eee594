package integration_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
)

// TestRefresh: {"type":"refresh"} moves an open WebSocket onto a new token
// of the same subject; anything else is answered with an error, under the
// failure throttle and a per-connection rate, and keeps the old token.
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
