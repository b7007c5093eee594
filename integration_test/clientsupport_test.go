package integration_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
)

// What the browser client (server/static/wsauth.js) needs of the server: a
// refresh by one-time ticket, expires_in from the server's clock, and GET
// /api/ws-check, which says why a handshake would fail.

func refreshTicketMsg(ticket string) string {
	b, _ := json.Marshal(map[string]string{"type": "refresh", "ticket": ticket})
	return string(b)
}

// TestRefreshByTicket: {"type":"refresh","ticket":…} moves the connection
// onto the token sealed in the ticket, and spends the ticket as /ws does;
// a ticket that cannot be used is an error answer, and the connection
// keeps its token.
func TestRefreshByTicket(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t)
	c, welcome := openWS(t, e, e.issue("alice", 3*time.Second, "ws"))
	oldExp := expOf(t, welcome)

	tok, exp := e.issueExp("alice", time.Hour, "api", "ws")
	ticket := e.mintTicket(t, tok)
	expectRefreshed(t, c, refreshTicketMsg(ticket), exp, time.Now)

	foreignTicket := e.peer().mintTicket(t, tok) // another instance: its own random ticket key

	errMsg := func(code string) map[string]any { return map[string]any{"type": "error", "error": code} }
	for _, tc := range []struct{ name, msg, want string }{
		{"the spent ticket again", refreshTicketMsg(ticket), "invalid_token"},
		{"a garbage ticket", refreshTicketMsg("not-a-ticket"), "invalid_token"},
		{"a ticket sealed by another key", refreshTicketMsg(foreignTicket), "invalid_token"},
		{"another subject's ticket", refreshTicketMsg(e.mintTicket(t, e.issue("mallory", time.Hour, "api", "ws"))), "invalid_token"},
		{"a token and a ticket", `{"type":"refresh","token":"` + tok + `","ticket":"` + e.mintTicket(t, tok) + `"}`, "invalid_request"},
	} {
		expectMsg(t, c, tc.msg, errMsg(tc.want))
		expectEcho(t, c, "still open after "+tc.name)
	}

	// The connection lives on the ticket's token: it outlives the first one.
	waitFor(t, time.Until(oldExp)+slack+5*time.Second, "the first token's expiry", func() bool {
		return time.Now().After(oldExp.Add(300 * time.Millisecond))
	})
	expectEcho(t, c, "past the first token's expiry")

	// Spent by the refresh, as on /ws: the ticket opens nothing any more.
	if conn, resp, body := e.dial("/ws?ticket="+ticket, nil); conn != nil || resp.StatusCode != 401 {
		t.Errorf("GET /ws with the ticket a refresh spent: status %d %s; want 401", resp.StatusCode, body)
	}
}

// TestExpiresIn: the welcome and refreshed messages say in expires_in how
// many seconds the token has left by the server's clock, which is what the
// connection's expiry follows, whatever the client's clock says.
func TestExpiresIn(t *testing.T) {
	checkNoLeaks(t)
	clk := newTestClock()
	e := newEnv(t, withServer(func(c *server.Config) { c.Now = clk.Now }))
	tok, exp := e.issueExp("alice", time.Hour, "ws")
	tok2, exp2 := e.issueExp("alice", 2*time.Hour, "ws")
	clk.Advance(10 * time.Minute) // the server's clock is 10 minutes ahead of the token system's
	c, welcome := openWS(t, e, tok)
	// exp goes over the wire, from the token system too, in whole seconds.
	exp, exp2 = time.Unix(exp.Unix(), 0), time.Unix(exp2.Unix(), 0)
	want := float64(int64(exp.Sub(clk.Now()) / time.Second))
	if got := welcome["expires_in"]; got != want || welcome["exp"] != float64(exp.Unix()) {
		t.Errorf("welcome = %v; want exp %d and expires_in %v (exp minus the server's now)", welcome, exp.Unix(), want)
	}

	if err := c.WriteText(refreshMsg(tok2)); err != nil {
		t.Fatal(err)
	}
	m, err := c.ReadJSON(5 * time.Second)
	want = float64(int64(exp2.Sub(clk.Now()) / time.Second))
	if err != nil || m["type"] != "refreshed" || m["expires_in"] != want || m["exp"] != float64(exp2.Unix()) {
		t.Errorf("answer to a refresh = %v, %v; want refreshed with exp %d and expires_in %v", m, err, exp2.Unix(), want)
	}
}

// TestWSCheck: GET /api/ws-check answers 204 where /ws would upgrade, and
// otherwise exactly the status, error and Retry-After /ws would answer.
func TestWSCheck(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, withServer(func(c *server.Config) { c.MaxConnsPerSubject = 1 }))
	alice := e.issue("alice", time.Hour, "api", "ws")
	bob := e.issue("bob", time.Hour, "api")
	full := e.issue("carol", time.Hour, "ws")
	openWS(t, e, full) // carol has her one connection

	type answer struct {
		status     int
		err        string
		retryAfter bool
	}
	check := func(t *testing.T, path string, h http.Header) answer {
		t.Helper()
		status, hdr, body := e.get(path, h)
		if status != 204 && errorCode(body) == "" {
			t.Errorf("GET %s: %d %q; want 204 or a JSON error", path, status, body)
		}
		return answer{status, errorCode(body), hdr.Get("Retry-After") != ""}
	}
	dial := func(t *testing.T, path string, h http.Header) answer {
		t.Helper()
		conn, resp, body := e.dial(path, h)
		if conn != nil {
			conn.Close()
			// carol's connection stays; this one must be gone before the
			// next case, or its subject is at MaxConnsPerSubject.
			waitFor(t, 5*time.Second, "the connection to end", func() bool { return e.srv.OpenConns() == 1 })
			return answer{status: 204} // what the check answers for an upgrade
		}
		return answer{resp.StatusCode, errorCode(body), resp.Header.Get("Retry-After") != ""}
	}
	cases := []struct {
		name  string
		query string
		h     http.Header
		want  answer
	}{
		{"cookie", "", http.Header{"Cookie": {"token=" + alice}}, answer{204, "", false}},
		{"cookie from the server's own page", "", http.Header{"Cookie": {"token=" + alice}, "Origin": {e.URL}}, answer{204, "", false}},
		{"bearer", "", http.Header{"Authorization": {"Bearer " + alice}}, answer{204, "", false}},
		{"query token", "?token=" + alice, nil, answer{204, "", false}},
		{"no credential", "", nil, answer{401, "missing_token", false}},
		{"invalid token", "", http.Header{"Authorization": {"Bearer nope"}}, answer{401, "invalid_token", false}},
		{"no ws scope", "", http.Header{"Authorization": {"Bearer " + bob}}, answer{403, "insufficient_scope", false}},
		{"foreign Origin", "", http.Header{"Cookie": {"token=" + alice}, "Origin": {"http://evil.example"}}, answer{403, "forbidden_origin", false}},
		{"two credentials", "?token=" + alice, http.Header{"Authorization": {"Bearer " + bob}}, answer{400, "invalid_request", false}},
		{"the subject's connections are all open", "", http.Header{"Authorization": {"Bearer " + full}}, answer{429, "too_many_connections", true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := check(t, "/api/ws-check"+c.query, c.h)
			if got != c.want {
				t.Errorf("GET /api/ws-check, %s: %+v; want %+v", c.name, got, c.want)
			}
			if ws := dial(t, "/ws"+c.query, c.h); ws != got {
				t.Errorf("%s: GET /ws answered %+v and GET /api/ws-check %+v; want the same", c.name, ws, got)
			}
		})
	}

	t.Run("a ticket is spent by the check", func(t *testing.T) {
		ticket := e.mintTicket(t, alice)
		if got := check(t, "/api/ws-check?ticket="+ticket, nil); got.status != 204 {
			t.Errorf("GET /api/ws-check with a fresh ticket: %+v; want 204", got)
		}
		if got := dial(t, "/ws?ticket="+ticket, nil); got.status != 401 {
			t.Errorf("GET /ws with the ticket the check spent: %+v; want 401", got)
		}
	})

	t.Run("token system down", func(t *testing.T) {
		down := newEnv(t)
		tok := down.issue("alice", time.Hour, "ws")
		down.svc.SetFaults(faketokensvc.Faults{Status: 500})
		h := http.Header{"Authorization": {"Bearer " + tok}}
		status, hdr, body := down.get("/api/ws-check", h)
		if status != 503 || errorCode(body) != "temporarily_unavailable" || hdr.Get("Retry-After") == "" {
			t.Errorf("GET /api/ws-check, token system down: %d %s, Retry-After %q; want 503 temporarily_unavailable with Retry-After",
				status, body, hdr.Get("Retry-After"))
		}
	})

	t.Run("failure throttle", func(t *testing.T) {
		thr := newEnv(t, withServer(func(c *server.Config) { c.FailureBurst = 2; c.FailureRefill = time.Hour }))
		bad := http.Header{"Authorization": {"Bearer nope"}}
		for i := range 2 {
			if status, _, _ := thr.get("/api/ws-check", bad); status != 401 {
				t.Fatalf("GET /api/ws-check with a bad token, attempt %d: status = %d; want 401", i+1, status)
			}
		}
		status, hdr, body := thr.get("/api/ws-check", bad)
		if status != 429 || errorCode(body) != "too_many_requests" || hdr.Get("Retry-After") == "" {
			t.Errorf("GET /api/ws-check past the burst: %d %s, Retry-After %q; want 429 too_many_requests with Retry-After",
				status, body, hdr.Get("Retry-After"))
		}
		if conn, resp, _ := thr.dial("/ws", bad); conn != nil || resp.StatusCode != 429 {
			t.Errorf("GET /ws after the checks used the burst: status %d; want 429: the check and /ws share the throttle", resp.StatusCode)
		}
	})

	t.Run("shutting down", func(t *testing.T) {
		sd := newEnv(t)
		tok := sd.issue("alice", time.Hour, "ws")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sd.srv.Shutdown(ctx)
		status, hdr, body := sd.get("/api/ws-check", http.Header{"Authorization": {"Bearer " + tok}})
		if status != 503 || hdr.Get("Retry-After") == "" {
			t.Errorf("GET /api/ws-check while shutting down: %d %s; want 503 with Retry-After", status, body)
		}
	})

	t.Run("close mode answers HTTP", func(t *testing.T) {
		cm := newEnv(t, withServer(func(c *server.Config) { c.WSReject = server.RejectClose }))
		for _, tc := range []struct {
			name string
			h    http.Header
			want answer
		}{
			{"no credential", nil, answer{401, "missing_token", false}},
			{"invalid token", http.Header{"Authorization": {"Bearer nope"}}, answer{401, "invalid_token", false}},
			{"no ws scope", http.Header{"Authorization": {"Bearer " + cm.issue("bob", time.Hour, "api")}}, answer{403, "insufficient_scope", false}},
			{"valid", http.Header{"Authorization": {"Bearer " + cm.issue("alice", time.Hour, "ws")}}, answer{204, "", false}},
		} {
			status, hdr, body := cm.get("/api/ws-check", tc.h)
			if got := (answer{status, errorCode(body), hdr.Get("Retry-After") != ""}); got != tc.want {
				t.Errorf("close mode, GET /api/ws-check, %s: %+v; want %+v", tc.name, got, tc.want)
			}
		}
	})
}

// TestClientModuleServed: GET /static/wsauth.js serves the browser client,
// an ES module without dependencies, with the page's headers, in demo mode
// and out of it.
func TestClientModuleServed(t *testing.T) {
	t.Parallel()
	for _, e := range []*env{newEnv(t), newDemoEnv(t)} {
		status, h, body := e.get("/static/wsauth.js", nil)
		if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/javascript") {
			t.Fatalf("GET /static/wsauth.js: %d %q; want 200 text/javascript", status, h.Get("Content-Type"))
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET /static/wsauth.js: Content-Security-Policy %q, X-Content-Type-Options %q; want the page's", csp, h.Get("X-Content-Type-Options"))
		}
		if !strings.Contains(body, "export class WSAuthClient extends EventTarget") || strings.Contains(body, "\nimport ") {
			t.Errorf("GET /static/wsauth.js: want a module exporting WSAuthClient and importing nothing")
		}
	}
}
