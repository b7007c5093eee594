package integration_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// way is how a client carries a token.
type way struct {
	name   string
	wsOnly bool
	apply  func(path, token string, h http.Header) string // returns the path to request
}

// ways are the credential ways a client can carry a token.
var ways = []way{
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
	t.Run("api", func(t *testing.T) { authMatrix(t, "api") })
	t.Run("ws", func(t *testing.T) { authMatrix(t, "ws") })
}

// The matrix by the capabilities TestConformance tells apart: HTTP auth,
// WebSocket auth, and the subprotocol as a way of carrying the token.
func testAuthMatrixAPI(t *testing.T)         { authMatrix(t, "api") }
func testAuthMatrixWS(t *testing.T)          { authMatrix(t, "ws", "bearer", "cookie", "query") }
func testAuthMatrixSubprotocol(t *testing.T) { authMatrix(t, "ws", "subprotocol") }

// authMatrix checks route ("api" or "ws") with each token kind carried each
// of the named ways (none named: every way), and, unless the subprotocol is
// the only way named, with no token at all.
func authMatrix(t *testing.T, route string, wayNames ...string) {
	t.Parallel()
	e := newEnv(t)
	authMatrixOf(t, e, route, e.issue, true, wayNames...)
}

// authMatrixOf is authMatrix on e, with tokens from issue; revocable says
// whether a revoked token is refused at once, as an introspected one is
// (a JWT verified locally is not: jwt_test.go).
func authMatrixOf(t *testing.T, e *env, route string, issue func(sub string, ttl time.Duration, scopes ...string) string, revocable bool, wayNames ...string) {
	revoked := issue("carol", time.Hour, "api", "ws")
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
		{"expired", func(string) string { return issue("dave", 0, "api", "ws") }, 401,
			func(string) string { return challengeInvalid }, "invalid_token"},
		{"revoked", func(string) string { return revoked }, 401,
			func(string) string { return challengeInvalid }, "invalid_token"},
		{"insufficient scope", func(route string) string {
			if route == "ws" {
				return issue("bob", time.Hour, "api")
			}
			return issue("bob", time.Hour, "ws")
		}, 403, challengeScope, "insufficient_scope"},
		{"valid", func(string) string { return issue("alice", time.Hour, "api", "ws") }, 0, nil, ""},
	}
	for _, way := range ways {
		if len(wayNames) > 0 && !slices.Contains(wayNames, way.name) || way.wsOnly && route != "ws" {
			continue
		}
		for _, kind := range kinds {
			if kind.name == "revoked" && !revocable {
				continue
			}
			t.Run(way.name+"/"+kind.name, func(t *testing.T) {
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
	if slices.Equal(wayNames, []string{"subprotocol"}) {
		return
	}
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		if route == "api" {
			status, hdr, body := e.get("/api/me", nil)
			checkRefusal(t, "GET without token", status, hdr, body, 401, challengeNone, "missing_token", "")
			return
		}
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

// checkRefusal checks the answer to a refused request: its status, its
// challenge, a JSON error body with a description, and no token in it. It
// reports whether the answer was readable. A bare one (a 4xx and nothing
// that says why, as x/net/websocket's Handshake hook writes) fails the test
// in one error; inside TestConformance it counts instead toward its
// capability's verdict, refused-unreadably (conformance_test.go).
func checkRefusal(t *testing.T, what string, status int, h http.Header, body string, wantStatus int, wantChallenge, wantErr, tok string) bool {
	t.Helper()
	if bareRefusal(status, h, body) {
		refusedUnreadably(t, fmt.Sprintf("%s: a bare %d; want %d with a JSON error %q (and WWW-Authenticate %q)", what, status, wantStatus, wantErr, wantChallenge))
		return false
	}
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
	return true
}

// bareRefusal reports whether a refusal says nothing but its 4xx status: no
// challenge and no JSON error.
func bareRefusal(status int, h http.Header, body string) bool {
	var b struct {
		Error string `json:"error"`
	}
	return status >= 400 && status < 500 && h.Get("WWW-Authenticate") == "" &&
		(json.Unmarshal([]byte(body), &b) != nil || b.Error == "")
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
