package integration_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// credential ways a client can carry a token.
var ways = []struct {
	name   string
	wsOnly bool
	apply  func(path, token string, h http.Header) string // returns the path to request
}{
	{"bearer", false, func(p, tok string, h http.Header) string { h.Set("Authorization", "Bearer "+tok); return p }},
	{"cookie", false, func(p, tok string, h http.Header) string { h.Set("Cookie", "token="+tok); return p }},
	{"query", false, func(p, tok string, h http.Header) string { return p + "?token=" + url.QueryEscape(tok) }},
	{"subprotocol", true, func(p, tok string, h http.Header) string {
		h.Set("Sec-WebSocket-Protocol", "wsauth.v1, wsauth.bearer."+tok)
		return p
	}},
}

const (
	challengeNone    = `Bearer realm="wsauth"`
	challengeInvalid = `Bearer realm="wsauth", error="invalid_token"`
)

func challengeScope(scope string) string {
	return `Bearer realm="wsauth", error="insufficient_scope", scope="` + scope + `"`
}

// TestAuthMatrix is the answers table of README.md, over real sockets:
// {HTTP /api/me, WebSocket /ws} × token kinds × credential ways.
func TestAuthMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	revoked := e.issue("carol", time.Hour, "api", "ws")
	e.svc.Revoke(revoked)
	kinds := []struct {
		name      string
		token     func(route string) string
		status    int
		challenge func(route string) string
		errCode   string
	}{
		{"garbage", func(string) string { return strings.Repeat("g", 5000) }, 401,
			func(string) string { return challengeInvalid }, "invalid_token"},
		{"unknown", func(string) string { return "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }, 401,
			func(string) string { return challengeInvalid }, "invalid_token"},
		{"expired", func(string) string { return e.issue("dave", 0, "api", "ws") }, 401,
			func(string) string { return challengeInvalid }, "invalid_token"},
		{"revoked", func(string) string { return revoked }, 401,
			func(string) string { return challengeInvalid }, "invalid_token"},
		{"insufficient scope", func(route string) string {
			if route == "ws" {
				return e.issue("bob", time.Hour, "api")
			}
			return e.issue("bob", time.Hour, "ws")
		}, 403, challengeScope, "insufficient_scope"},
		{"valid", func(string) string { return e.issue("alice", time.Hour, "api", "ws") }, 0, nil, ""},
	}
	for _, route := range []string{"api", "ws"} {
		for _, way := range ways {
			if way.wsOnly && route != "ws" {
				continue
			}
			for _, kind := range kinds {
				t.Run(route+"/"+way.name+"/"+kind.name, func(t *testing.T) {
					t.Parallel()
					tok := kind.token(route)
					h := http.Header{}
					if route == "api" {
						path := way.apply("/api/me", tok, h)
						status, hdr, body := e.get(path, h)
						if kind.status == 0 {
							checkMe(t, status, body, "alice")
							return
						}
						checkRefusal(t, "GET "+way.name, status, hdr, body, kind.status, kind.challenge(route), kind.errCode, tok)
						return
					}
					path := way.apply("/ws", tok, h)
					c, resp, body := e.dial(path, h)
					if kind.status == 0 {
						if c == nil {
							t.Fatalf("WebSocket by %s with a valid token: status %d %s; want 101", way.name, resp.StatusCode, body)
						}
						wantProto := ""
						if way.name == "subprotocol" {
							wantProto = "wsauth.v1"
						}
						if c.Protocol != wantProto {
							t.Errorf("Sec-WebSocket-Protocol = %q; want %q", c.Protocol, wantProto)
						}
						checkWelcomeAndEcho(t, c, "alice")
						return
					}
					if c != nil {
						t.Fatalf("WebSocket by %s with %s token: upgraded; want %d", way.name, kind.name, kind.status)
					}
					checkRefusal(t, "WebSocket "+way.name, resp.StatusCode, resp.Header, body, kind.status, kind.challenge(route), kind.errCode, tok)
				})
			}
		}
	}
	t.Run("api/missing", func(t *testing.T) {
		t.Parallel()
		status, hdr, body := e.get("/api/me", nil)
		checkRefusal(t, "GET without token", status, hdr, body, 401, challengeNone, "missing_token", "")
	})
	t.Run("ws/missing", func(t *testing.T) {
		t.Parallel()
		c, resp, body := e.dial("/ws", nil)
		if c != nil {
			t.Fatal("WebSocket without token: upgraded; want 401")
		}
		checkRefusal(t, "WebSocket without token", resp.StatusCode, resp.Header, body, 401, challengeNone, "missing_token", "")
	})
}

func checkMe(t *testing.T, status int, body, sub string) {
	t.Helper()
	if status != 200 {
		t.Fatalf("GET /api/me: status = %d (%s); want 200", status, body)
	}
	var me struct {
		Sub   string   `json:"sub"`
		Scope []string `json:"scope"`
		Exp   int64    `json:"exp"`
	}
	if err := json.Unmarshal([]byte(body), &me); err != nil {
		t.Fatalf("GET /api/me body %q: %v", body, err)
	}
	if me.Sub != sub || strings.Join(me.Scope, " ") != "api ws" || me.Exp < time.Now().Unix() {
		t.Errorf("GET /api/me = %+v; want sub %s, scope [api ws], exp in the future", me, sub)
	}
}

func checkRefusal(t *testing.T, what string, status int, h http.Header, body string, wantStatus int, wantChallenge, wantErr, tok string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: status = %d; want %d", what, status, wantStatus)
	}
	if got := h.Get("WWW-Authenticate"); got != wantChallenge {
		t.Errorf("%s: WWW-Authenticate = %q; want %q", what, got, wantChallenge)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type = %q; want application/json", what, ct)
	}
	var b struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil || b.Error != wantErr || b.Description == "" {
		t.Errorf("%s: body = %q; want {\"error\":%q, \"error_description\":…}", what, body, wantErr)
	}
	if tok != "" && strings.Contains(body, tok) {
		t.Errorf("%s: body contains the token", what)
	}
}

func checkWelcomeAndEcho(t *testing.T, c *wsConn, sub string) {
	t.Helper()
	m, err := c.ReadJSON(5 * time.Second)
	if err != nil {
		t.Fatalf("reading welcome: %v", err)
	}
	if m["type"] != "welcome" || m["sub"] != sub || m["exp"] == nil {
		t.Errorf("welcome = %v; want type welcome, sub %s, exp", m, sub)
	}
	if err := c.WriteText("hello"); err != nil {
		t.Fatal(err)
	}
	m, err = c.ReadJSON(5 * time.Second)
	if err != nil {
		t.Fatalf("reading echo: %v", err)
	}
	if m["type"] != "echo" || m["sub"] != sub || m["data"] != "hello" {
		t.Errorf("echo = %v; want {type:echo sub:%s data:hello}", m, sub)
	}
	c.Close()
}
