package integration_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
)

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

// TestDemoLogin: in demo mode POST /dev/login issues a token and sets it as
// an HttpOnly, SameSite=Lax cookie that opens /api/me and /ws.
func TestDemoLogin(t *testing.T) {
	t.Parallel()
	e := newDemoEnv(t)
	cases := []struct {
		name    string
		h       http.Header
		body    string
		status  int
		errCode string
		sub     string
		scope   string
		maxAge  int
	}{
		{"defaults", jsonHeader, `{"sub":"alice"}`, 200, "", "alice", "api ws", 3600},
		{"scopes and ttl", jsonHeader, `{"sub":"bob","scope":"api","ttl":90}`, 200, "", "bob", "api", 90},
		{"unicode subject", jsonHeader, `{"sub":"zoë"}`, 200, "", "zoë", "api ws", 3600},
		{"own Origin", http.Header{"Content-Type": {"application/json"}, "Origin": {e.URL}}, `{"sub":"alice"}`, 200, "", "alice", "api ws", 3600},
		{"empty subject", jsonHeader, `{"sub":""}`, 400, "invalid_request", "", "", 0},
		{"subject with a space", jsonHeader, `{"sub":"a b"}`, 400, "invalid_request", "", "", 0},
		{"subject with a control byte", jsonHeader, `{"sub":"a\u0007"}`, 400, "invalid_request", "", "", 0},
		{"long subject", jsonHeader, `{"sub":"` + strings.Repeat("a", 65) + `"}`, 400, "invalid_request", "", "", 0},
		{"quote in a scope", jsonHeader, `{"sub":"a","scope":"api \"ws"}`, 400, "invalid_request", "", "", 0},
		{"ttl too long", jsonHeader, `{"sub":"a","ttl":86401}`, 400, "invalid_request", "", "", 0},
		{"negative ttl", jsonHeader, `{"sub":"a","ttl":-1}`, 400, "invalid_request", "", "", 0},
		{"unknown field", jsonHeader, `{"sub":"a","admin":true}`, 400, "invalid_request", "", "", 0},
		{"not JSON", jsonHeader, `sub=alice`, 400, "invalid_request", "", "", 0},
		{"a cross-site form", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, `{"sub":"alice"}`, 400, "invalid_request", "", "", 0},
		{"foreign Origin", http.Header{"Content-Type": {"application/json"}, "Origin": {"http://evil.example"}}, `{"sub":"alice"}`, 403, "forbidden_origin", "", "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			status, h, body := e.post("/dev/login", c.h, c.body)
			if status != c.status {
				t.Fatalf("POST /dev/login %s: status = %d (%s); want %d", c.body, status, body, c.status)
			}
			if c.status != 200 {
				if got := errorCode(body); got != c.errCode {
					t.Errorf("POST /dev/login %s: error = %q; want %q", c.body, got, c.errCode)
				}
				if h.Get("Set-Cookie") != "" {
					t.Errorf("refused sign-in set a cookie: %q", h.Get("Set-Cookie"))
				}
				return
			}
			var m struct {
				Sub       string   `json:"sub"`
				Scope     []string `json:"scope"`
				Token     string   `json:"token"`
				ExpiresIn int      `json:"expires_in"`
			}
			if err := json.Unmarshal([]byte(body), &m); err != nil || m.Sub != c.sub || strings.Join(m.Scope, " ") != c.scope ||
				m.Token == "" || m.ExpiresIn != c.maxAge {
				t.Fatalf("POST /dev/login = %s; want sub %s, scope %q, a token, expires_in %d", body, c.sub, c.scope, c.maxAge)
			}
			ck := tokenCookie(t, h)
			if ck.Value != m.Token || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" ||
				ck.Secure || ck.MaxAge != c.maxAge {
				t.Errorf("Set-Cookie = %q; want token=<the token>; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax, not Secure over http",
					h.Get("Set-Cookie"), c.maxAge)
			}
			status, _, body = e.get("/api/me", http.Header{"Cookie": {"token=" + ck.Value}})
			if status != 200 || !strings.Contains(body, `"sub":"`+c.sub+`"`) {
				t.Errorf("GET /api/me with the cookie: %d %s; want 200 for %s", status, body, c.sub)
			}
		})
	}
	t.Run("logout", func(t *testing.T) {
		t.Parallel()
		status, h, _ := e.post("/dev/logout", http.Header{"X-Requested-With": {"fetch"}}, "")
		if status != 204 {
			t.Fatalf("POST /dev/logout: status = %d; want 204", status)
		}
		if ck := tokenCookie(t, h); ck.Value != "" || ck.MaxAge >= 0 || !ck.HttpOnly || ck.Path != "/" {
			t.Errorf("POST /dev/logout: Set-Cookie = %q; want token=; Path=/; Max-Age=0; HttpOnly", h.Get("Set-Cookie"))
		}
		if status, _, _ := e.post("/dev/logout", nil, ""); status != 400 {
			t.Errorf("POST /dev/logout as a form: status = %d; want 400", status)
		}
	})
}

// TestDemoLoginTLS: under TLS the cookie is Secure.
func TestDemoLoginTLS(t *testing.T) {
	t.Parallel()
	e := newDemoEnv(t, withTLS())
	status, h, body := e.post("/dev/login", jsonHeader, `{"sub":"alice","ttl":1}`)
	if status != 200 {
		t.Fatalf("POST /dev/login over TLS: status = %d (%s); want 200", status, body)
	}
	if ck := tokenCookie(t, h); !ck.Secure || !ck.HttpOnly || ck.MaxAge != 1 {
		t.Errorf("Set-Cookie over TLS = %q; want Secure, HttpOnly, Max-Age=1", h.Get("Set-Cookie"))
	}
}

// TestDemoPage: GET / serves the page in both modes; /dev/login exists in
// demo mode only.
func TestDemoPage(t *testing.T) {
	t.Parallel()
	for _, demo := range []bool{true, false} {
		name := map[bool]string{true: "demo", false: "external"}[demo]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var e *env
			if demo {
				e = newDemoEnv(t)
			} else {
				e = newEnv(t)
			}
			status, h, body := e.get("/", nil)
			if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
				t.Fatalf("GET /: %d %q; want 200 text/html", status, h.Get("Content-Type"))
			}
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"script-src 'self'", "default-src 'none'", "frame-ancestors 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("GET /: Content-Security-Policy %q lacks %q", csp, want)
				}
			}
			if h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("GET /: Referrer-Policy %q, X-Content-Type-Options %q; want no-referrer, nosniff",
					h.Get("Referrer-Policy"), h.Get("X-Content-Type-Options"))
			}
			for _, want := range []string{`id="connect-ticket"`, `id="connect-cookie"`, `id="connect-query"`, `id="connect-subprotocol"`} {
				if !strings.Contains(body, want) {
					t.Errorf("GET /: page lacks %s", want)
				}
			}
			hasLogin := strings.Contains(body, `id="login"`)
			mentionsExternal := strings.Contains(body, "Sign-in happens in your organization's token system")
			if hasLogin != demo || mentionsExternal == demo {
				t.Errorf("GET / (%s): sign-in box %v, external sign-in note %v; want %v, %v", name, hasLogin, mentionsExternal, demo, !demo)
			}

			status, _, _ = e.post("/dev/login", jsonHeader, `{"sub":"alice"}`)
			if want := map[bool]int{true: 200, false: 404}[demo]; status != want {
				t.Errorf("POST /dev/login (%s): status = %d; want %d", name, status, want)
			}
			for path, want := range map[string]string{"/static/app.js": "text/javascript", "/static/style.css": "text/css"} {
				status, h, _ := e.get(path, nil)
				if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), want) {
					t.Errorf("GET %s: %d %q; want 200 %s", path, status, h.Get("Content-Type"), want)
				}
			}
			for _, path := range []string{"/static/index.html", "/static/", "/static/../server.go", "/nothing"} {
				if status, _, _ := e.get(path, nil); status != 404 {
					t.Errorf("GET %s: status = %d; want 404", path, status)
				}
			}
		})
	}
}

// readFirst reads the first frame after the upgrade: in close mode, a
// refused client must get the close frame before any message.
func readFirst(t *testing.T, c *wsConn) (msg string, ce *wsCloseError) {
	t.Helper()
	msg, err := c.Read(5 * time.Second)
	if errors.As(err, &ce) {
		return "", ce
	}
	if err != nil {
		t.Fatalf("reading the first frame: %v", err)
	}
	return msg, nil
}

// TestCloseMode: with WSReject "close", a missing or invalid token or a
// lacking scope is an upgrade closed at once with 3000 or 3003 and a reason;
// a foreign Origin, a malformed request and an unavailable token system
// stay HTTP.
func TestCloseMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withServer(func(c *server.Config) { c.WSReject = server.RejectClose }))
	alice := e.issue("alice", time.Hour, "api", "ws")
	bob := e.issue("bob", time.Hour, "api")
	spent := e.mintTicket(t, alice)
	if c, resp, _ := e.dial("/ws?ticket="+spent, nil); c == nil {
		t.Fatalf("first use of a ticket in close mode: status %d; want 101", resp.StatusCode)
	} else {
		c.Close()
	}
	cases := []struct {
		name   string
		path   string
		h      http.Header
		status int // 101: upgraded
		code   int
		reason string
		proto  string
	}{
		{"missing", "/ws", nil, 101, 3000, "missing token", ""},
		{"invalid", "/ws?token=nope", nil, 101, 3000, "invalid, expired or revoked token", ""},
		{"expired", "/ws?token=" + e.issue("dave", 0, "api", "ws"), nil, 101, 3000, "invalid, expired or revoked token", ""},
		{"no ws scope", "/ws", http.Header{"Authorization": {"Bearer " + bob}}, 101, 3003, "insufficient scope: token lacks ws", ""},
		{"replayed ticket", "/ws?ticket=" + spent, nil, 101, 3000, "invalid, expired or used ticket", ""},
		{"invalid by subprotocol", "/ws", http.Header{"Sec-WebSocket-Protocol": {"wsauth.v1, wsauth.bearer.nope"}}, 101, 3000, "invalid", "wsauth.v1"},
		{"own Origin, no token", "/ws", http.Header{"Origin": {e.URL}}, 101, 3000, "missing token", ""},
		{"foreign Origin with a valid cookie", "/ws", http.Header{"Origin": {"http://evil.example"}, "Cookie": {"token=" + alice}}, 403, 0, "", ""},
		{"foreign Origin without a token", "/ws", http.Header{"Origin": {"http://evil.example"}}, 403, 0, "", ""},
		{"two credentials", "/ws?token=a", http.Header{"Authorization": {"Bearer b"}}, 400, 0, "", ""},
		{"valid", "/ws", http.Header{"Authorization": {"Bearer " + alice}}, 101, 0, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, resp, body := e.dial(c.path, c.h)
			if resp.StatusCode != c.status {
				t.Fatalf("close mode, %s: status = %d (%s); want %d", c.name, resp.StatusCode, body, c.status)
			}
			if conn == nil {
				return
			}
			if conn.Protocol != c.proto {
				t.Errorf("Sec-WebSocket-Protocol = %q; want %q", conn.Protocol, c.proto)
			}
			if c.code == 0 {
				checkWelcomeAndEcho(t, conn, "alice")
				return
			}
			msg, ce := readFirst(t, conn)
			if ce == nil {
				t.Fatalf("close mode, %s: first frame is a message %q; want close %d", c.name, msg, c.code)
			}
			if ce.Code != c.code || !strings.Contains(ce.Reason, c.reason) {
				t.Errorf("close mode, %s: close %d %q; want %d %q", c.name, ce.Code, ce.Reason, c.code, c.reason)
			}
			conn.nc.Close()
		})
	}
	t.Run("token system down", func(t *testing.T) {
		t.Parallel()
		down := newEnv(t, withServer(func(c *server.Config) { c.WSReject = server.RejectClose }))
		tok := down.issue("alice", time.Hour, "api", "ws")
		down.svc.SetFaults(faketokensvc.Faults{Status: 500})
		conn, resp, body := down.dial("/ws", http.Header{"Authorization": {"Bearer " + tok}})
		if conn != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Errorf("close mode, token system down: %d %s; want HTTP 503 with Retry-After", resp.StatusCode, body)
		}
	})
}
