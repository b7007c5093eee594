package integration_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBadRequests: a request whose credential cannot be told for sure (two
// credentials, an empty bearer, a repeated or unparsable query, more
// cookies than net/http reads) is refused with 400 or 431, and one that is
// no handshake or uses the wrong method with 426 or 405.
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
