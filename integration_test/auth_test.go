package integration_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAuthMatrix is the answers table of docs/REFERENCE.md, over real sockets:
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

// TestWSS: the subprotocol way over TLS, where the server answers
// wsauth.v1 and never the entry that holds the token.
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
