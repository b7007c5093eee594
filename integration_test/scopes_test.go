package integration_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"wsauth/server"
	"wsauth/tokens"
)

// TestConfiguredScopes: with Config.APIScope and Config.WSScope set to the
// scopes an operator's tokens carry, every route, answer, close reason and
// the demo page follow them, and the default names mean nothing.
func TestConfiguredScopes(t *testing.T) {
	checkNoLeaks(t)
	const api, ws = "chat:read", "chat:write"
	const recheck = 200 * time.Millisecond
	scoped := withServer(func(c *server.Config) { c.APIScope, c.WSScope, c.Recheck = api, ws, recheck })

	t.Run("routes and answers", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, scoped)
		both := e.issue("alice", time.Hour, api, ws)
		readOnly := e.issue("bob", time.Hour, api)
		defaults := e.issue("carol", time.Hour, "api", "ws")

		for _, tc := range []struct {
			name, tok string
			status    int
			challenge string
		}{
			{"configured scopes", both, 200, ""},
			{"api scope only", readOnly, 200, ""},
			{"the default names", defaults, 403, challengeScope(api)},
		} {
			status, h, body := e.get("/api/me", bearer(tc.tok))
			if tc.status == 200 {
				if status != 200 {
					t.Errorf("GET /api/me with %s: status = %d (%s); want 200", tc.name, status, body)
				}
				continue
			}
			checkRefusal(t, "GET /api/me with "+tc.name, status, h, body, tc.status, tc.challenge, "insufficient_scope", tc.tok)
			if !strings.Contains(body, `"the token lacks the scope `+api+`"`) {
				t.Errorf("GET /api/me with %s: body = %s; want the description to name %s", tc.name, body, api)
			}
		}

		for _, tc := range []struct {
			name, tok string
			status    int
		}{
			{"configured scopes", both, 101},
			{"api scope only", readOnly, 403},
			{"the default names", defaults, 403},
		} {
			c, resp, body := e.dial("/ws", bearer(tc.tok))
			if tc.status == 101 {
				if c == nil {
					t.Fatalf("GET /ws with %s: status %d (%s); want 101", tc.name, resp.StatusCode, body)
				}
				checkWelcomeAndEcho(t, c, "alice")
				continue
			}
			if c != nil {
				t.Fatalf("GET /ws with %s: upgraded; want 403", tc.name)
			}
			checkRefusal(t, "GET /ws with "+tc.name, resp.StatusCode, resp.Header, body, 403, challengeScope(ws), "insufficient_scope", tc.tok)
		}

		if status, _, _ := mintTicketFor(e, readOnly); status != 403 {
			t.Errorf("POST /api/ws-ticket with only %s: status = %d; want 403", api, status)
		}
		status, ticket, _ := mintTicketFor(e, both)
		if status != 200 {
			t.Fatalf("POST /api/ws-ticket with %s: status = %d; want 200", ws, status)
		}
		c, resp, body := e.dial("/ws?ticket="+url.QueryEscape(ticket), nil)
		if c == nil {
			t.Fatalf("GET /ws?ticket=: status %d (%s); want 101", resp.StatusCode, body)
		}
		c.Close()
	})

	t.Run("refresh and recheck hold the connection to the ws scope", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, scoped)
		tok := e.issue("alice", time.Hour, api, ws)
		c, _ := openWS(t, e, tok)
		expectMsg(t, c, refreshMsg(e.issue("alice", time.Hour, api)), map[string]any{"type": "error", "error": "insufficient_scope"})
		expectMsg(t, c, refreshMsg(e.issue("alice", time.Hour, "api", "ws")), map[string]any{"type": "error", "error": "insufficient_scope"})
		next := e.issue("alice", 2*time.Hour, ws)
		if err := c.WriteText(refreshMsg(next)); err != nil {
			t.Fatal(err)
		}
		if m, err := c.ReadJSON(5 * time.Second); err != nil || m["type"] != "refreshed" {
			t.Fatalf("refresh to a token with %s: %v, %v; want refreshed", ws, m, err)
		}
		if !e.svc.SetScopes(next, []string{api, "ws"}) {
			t.Fatal("SetScopes: token unknown to the fake")
		}
		expectClose(t, c, recheck+slack+5*time.Second, server.CloseForbidden, "insufficient scope")
	})

	t.Run("close mode names the scope", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, scoped, withServer(func(c *server.Config) { c.WSReject = server.RejectClose }))
		c, resp, body := e.dial("/ws", bearer(e.issue("bob", time.Hour, api)))
		if c == nil {
			t.Fatalf("close mode, GET /ws without %s: status %d (%s); want 101", ws, resp.StatusCode, body)
		}
		expectClose(t, c, 5*time.Second, server.CloseForbidden, "insufficient scope: token lacks "+ws)
	})

	t.Run("demo page and sign-in", func(t *testing.T) {
		t.Parallel()
		e := newDemoEnv(t, scoped)
		_, _, page := e.get("/", nil)
		for _, want := range []string{`value="` + api + ` ` + ws + `"`, `the token lacks the <code>` + ws + `</code> scope`} {
			if !strings.Contains(page, want) {
				t.Errorf("GET /: the page does not hold %q", want)
			}
		}
		status, _, body := e.post("/dev/login", jsonHeader, `{"sub":"alice"}`)
		if status != 200 || !strings.Contains(body, `"scope":["`+api+`","`+ws+`"]`) {
			t.Errorf("POST /dev/login without a scope: %d %s; want 200 and scopes [%s %s]", status, body, api, ws)
		}
		var login struct{ Token string }
		json.Unmarshal([]byte(body), &login)
		rememberSecret(login.Token)
	})
}

// TestScopeMustBeAScopeToken: a scope no token can carry, or that cannot
// be quoted in a challenge, stops New.
func TestScopeMustBeAScopeToken(t *testing.T) {
	t.Parallel()
	for _, scope := range []string{"chat read", `chat"read`, `chat\read`, "chät"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("server.New with WSScope %q did not panic", scope)
				}
			}()
			server.New(server.Config{Validator: nopValidator, WSScope: scope})
		}()
	}
	server.New(server.Config{Validator: nopValidator, APIScope: "https://api.example.com/read", WSScope: "chat:write"})
}

var nopValidator = tokens.ValidatorFunc(func(context.Context, string) (tokens.Principal, error) {
	return tokens.Principal{}, tokens.ErrInvalid
})
