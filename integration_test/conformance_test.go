package integration_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// capabilities groups the tests by what a port of this design may or may
// not have implemented, so that a run against a port says which it has.
// Each verdict means one thing: "HTTP auth" opens no WebSocket, "WebSocket
// auth" is whether a token by header, query or cookie decides the
// handshake and how a refusal reads, and so on; cmd/wsauth-minimal, which
// has some capabilities and not others, shows the split (README.md, "Why
// the full server is bigger").
//
// The test* functions of this file use only HTTP, WebSocket and the fake
// token service's admin API, so they run in process or against
// WSAUTH_TARGET; the Test* functions of other files that need more (a
// clock, a Config of their own, the server's Go API) skip themselves
// against a target and count in the in-process verdicts only. absent, when
// set, tells whether the target lacks the capability altogether (its entry
// point does not exist): the verdict is then "absent", not "FAIL".
var capabilities = []struct {
	name     string
	absent   func(e *env) string
	untested func() string // non-empty: the suite cannot test it here, and says why
	tests    []struct {
		name string
		f    func(*testing.T)
	}
}{
	{name: "HTTP auth", tests: tests(
		"AuthMatrix", testAuthMatrixAPI,
		"Precedence", testPrecedenceAPI,
		"APIRefusals", testAPIRefusals)},
	{name: "WebSocket auth", tests: tests(
		"AuthMatrix", testAuthMatrixWS,
		"Precedence", testPrecedenceWS,
		"WelcomeEcho", testWebSocketSession,
		"RefusedBeforeUpgrade", testWebSocketRefusals)},
	{name: "bad handshakes", tests: tests(
		"NotAHandshakeThisServerSpeaks", testBadHandshakes)},
	{name: "closing handshake", tests: tests(
		"ClientCloseAnswered", testClientClose)},
	{name: "origin check", tests: tests(
		"Origin", TestOrigin)},
	{name: "subprotocol", tests: tests(
		"Subprotocol", testSubprotocol,
		"AuthMatrix", testAuthMatrixSubprotocol)},
	{name: "tickets", absent: ticketsAbsent, tests: tests(
		"TicketOnce", testTicketOnce,
		"TicketMint", TestTicketMint,
		"TicketRedeem", TestTicketRedeem)},
	{name: "expiry close", tests: tests(
		"ExpiryClose", testExpiryClose,
		"TokenExpiryCloses3000", TestTokenExpiryCloses3000)},
	{name: "refresh", tests: tests(
		"RefreshOutlivesToken", testRefresh,
		"Refresh", TestRefresh)},
	{name: "revocation close", tests: tests(
		"RevocationClose", testRevocationClose,
		"ScopeLossClose", testScopeLossClose,
		"Recheck", TestRecheck,
		"RecheckCostsOneIntrospectionPerToken", TestRecheckCostsOneIntrospectionPerToken)},
	{name: "shutdown", untested: shutdownUntestable, tests: tests(
		"Shutdown", TestShutdown,
		"ShutdownCloses1001", testShutdown)},
}

func tests(nameAndFunc ...any) []struct {
	name string
	f    func(*testing.T)
} {
	var out []struct {
		name string
		f    func(*testing.T)
	}
	for i := 0; i < len(nameAndFunc); i += 2 {
		out = append(out, struct {
			name string
			f    func(*testing.T)
		}{nameAndFunc[i].(string), nameAndFunc[i+1].(func(*testing.T))})
	}
	return out
}

// TestConformance runs every capability's tests and prints a verdict per
// capability:
//   - PASS: every test passed (some may have skipped);
//   - FAIL: a test failed: a good request was refused, a bad one let in,
//     or an answer was wrong;
//   - refused-unreadably: every test passed but for refusals that said
//     nothing but a 4xx status, as x/net/websocket's Handshake hook
//     answers (checkRefusal): the server let in what it should and kept
//     out what it should, but a client cannot tell why it was kept out.
//     The bare refusals fail TestConformance all the same;
//   - absent: the target lacks the capability's entry point;
//   - SKIP: the suite cannot test it here, or every test skipped.
//
// The tests in it also run on their own, so a plain `go test` skips it
// unless -run names it or WSAUTH_TARGET is set:
//
//	go test ./integration_test -run Conformance -v
//	WSAUTH_TARGET=http://127.0.0.1:8080 WSAUTH_TOKENSVC=http://127.0.0.1:8081 \
//	    go test ./integration_test -run Conformance -v
//
// Shutdown is last: against a target it stops the target (WSAUTH_TARGET_PID).
func TestConformance(t *testing.T) {
	if f := flag.Lookup("test.run"); !remote() && (f == nil || !strings.Contains(f.Value.String(), "Conformance")) {
		t.Skip("the same tests run on their own; -run Conformance runs them grouped, with verdicts")
	}
	type verdict struct{ name, result, detail string }
	var verdicts []verdict
	for _, c := range capabilities {
		if c.untested != nil {
			if why := c.untested(); why != "" {
				verdicts = append(verdicts, verdict{c.name, "SKIP", why})
				continue
			}
		}
		if c.absent != nil {
			probe := newEnv(t, withProfile())
			if why := c.absent(probe); why != "" {
				verdicts = append(verdicts, verdict{c.name, "absent", why})
				continue
			}
		}
		var (
			mu           sync.Mutex
			ran, skipped int
			failed       bool
			bare         []string
		)
		t.Run(c.name, func(t *testing.T) {
			// Runs once every test of the capability, parallel ones
			// included, has ended: whatever failed the capability by then
			// is not a bare refusal, which checkRefusal only noted.
			t.Cleanup(func() {
				failed = t.Failed()
				bare = bareRefusals(t.Name())
				for _, b := range bare {
					t.Error(b)
				}
			})
			for _, tc := range c.tests {
				t.Run(tc.name, func(t *testing.T) {
					defer func() {
						mu.Lock()
						ran++
						if t.Skipped() {
							skipped++
						}
						mu.Unlock()
					}()
					tc.f(t)
				})
			}
		})
		v := verdict{c.name, "PASS", fmt.Sprintf("%d tests", ran)}
		switch {
		case failed:
			v.result = "FAIL"
		case len(bare) > 0:
			v.result, v.detail = "refused-unreadably", fmt.Sprintf("%d bare refusals, nothing let in that should not be", len(bare))
		case skipped == ran:
			v.result, v.detail = "SKIP", "every test skipped"
		case skipped > 0:
			v.detail += fmt.Sprintf(", %d skipped", skipped)
		}
		verdicts = append(verdicts, v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nconformance against %s:\n", describeTarget())
	for _, v := range verdicts {
		fmt.Fprintf(&b, "  %-18s %-18s %s\n", v.name, v.result, v.detail)
	}
	fmt.Print(b.String())
}

// The bare refusals checkRefusal met inside TestConformance, by capability
// (the test name "TestConformance/<capability>").
var (
	bareMu sync.Mutex
	bare   = map[string][]string{}
)

// refusedUnreadably reports a bare refusal. Inside TestConformance it is
// noted for the capability's verdict, which fails with it once all its
// tests have ended; anywhere else the test fails.
func refusedUnreadably(t *testing.T, msg string) {
	t.Helper()
	parts := strings.SplitN(t.Name(), "/", 3)
	if len(parts) < 3 || parts[0] != "TestConformance" {
		t.Error(msg)
		return
	}
	t.Log(msg)
	bareMu.Lock()
	defer bareMu.Unlock()
	capability := parts[0] + "/" + parts[1]
	bare[capability] = append(bare[capability], t.Name()+": "+msg)
}

// bareRefusals returns, and forgets, the bare refusals noted for the
// capability whose test is named capability.
func bareRefusals(capability string) []string {
	bareMu.Lock()
	defer bareMu.Unlock()
	b := bare[capability]
	delete(bare, capability)
	return b
}

// testAPIRefusals: GET /api/me's answers that do not depend on Go.
func testAPIRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withProfile())
	alice := e.issue("alice", time.Hour, "api", "ws")
	bob := e.issue("bob", time.Hour, "api", "ws")
	for _, tc := range []struct {
		name      string
		path      string
		h         http.Header
		status    int
		challenge string
		code      string
	}{
		{"two different credentials", "/api/me?token=" + bob, bearer(alice), 400, `Bearer realm="wsauth", error="invalid_request"`, "invalid_request"},
		{"empty bearer", "/api/me", http.Header{"Authorization": {"Bearer "}}, 400, `Bearer realm="wsauth", error="invalid_request"`, "invalid_request"},
		{"repeated query token", "/api/me?token=" + alice + "&token=" + alice, nil, 400, `Bearer realm="wsauth", error="invalid_request"`, "invalid_request"},
	} {
		status, h, body := e.get(tc.path, tc.h)
		checkRefusal(t, tc.name, status, h, body, tc.status, tc.challenge, tc.code, alice)
	}
	resp, err := e.client.Post(e.URL+"/api/me", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("POST /api/me: %d; want 405", resp.StatusCode)
	}
}

// testWebSocketSession: a valid token opens a WebSocket whose welcome and
// echoes name the subject.
func testWebSocketSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withProfile())
	tok := e.issue("alice", time.Hour, "api", "ws")
	c, resp, body := e.dial("/ws", bearer(tok))
	if c == nil {
		t.Fatalf("GET /ws with a valid bearer: %d %s; want 101", resp.StatusCode, body)
	}
	m, err := c.ReadJSON(5 * time.Second)
	if err != nil {
		t.Fatalf("reading welcome: %v", err)
	}
	exp, _ := m["exp"].(float64)
	if until := time.Until(time.Unix(int64(exp), 0)); m["type"] != "welcome" || m["sub"] != "alice" || until <= 0 || until > time.Hour+time.Minute {
		t.Errorf("welcome = %v; want type welcome, sub alice, exp in about an hour", m)
	}
	if scopes, _ := m["scope"].([]any); len(scopes) != 2 {
		t.Errorf("welcome scope = %v; want [api ws]", m["scope"])
	}
	for _, msg := range []string{"hello", `{"not":"a refresh"}`, "é 世界"} {
		if err := c.WriteText(msg); err != nil {
			t.Fatal(err)
		}
		m, err := c.ReadJSON(5 * time.Second)
		if err != nil || m["type"] != "echo" || m["sub"] != "alice" || m["data"] != msg {
			t.Errorf("echo of %q = %v, %v; want {type:echo sub:alice data:%q}", msg, m, err, msg)
		}
	}
	c.Close()
}

// testClientClose: the server answers a client's close frame with the
// client's code (RFC 6455 §5.5.1).
func testClientClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withProfile())
	c, _ := openWS(t, e, e.issue("alice", time.Hour, "api", "ws"))
	if err := c.WriteClose(4001, "bye"); err != nil {
		t.Fatal(err)
	}
	c.ExpectClose(t, 5*time.Second, 4001, "")
}

// testWebSocketRefusals: a refused handshake is an HTTP answer, before the
// upgrade, that says why.
func testWebSocketRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withProfile())
	bob := e.issue("bob", time.Hour, "api")
	for _, tc := range []struct {
		name      string
		h         http.Header
		status    int
		challenge string
		code      string
	}{
		{"no credential", nil, 401, challengeNone, "missing_token"},
		{"unknown token", bearer(strings.Repeat("A", 43)), 401, challengeInvalid, "invalid_token"},
		{"token without the ws scope", bearer(bob), 403, challengeScope("ws"), "insufficient_scope"},
	} {
		c, resp, body := e.dial("/ws", tc.h)
		if c != nil {
			t.Errorf("%s: upgraded; want %d", tc.name, tc.status)
			continue
		}
		checkRefusal(t, tc.name, resp.StatusCode, resp.Header, body, tc.status, tc.challenge, tc.code, bob)
	}
}

// testBadHandshakes: a request to /ws that is not a WebSocket handshake this
// server speaks is refused before the upgrade with 426, naming what it
// needs (RFC 6455 §4.2.2, §4.4), even with a valid token.
func testBadHandshakes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withProfile())
	alice := e.issue("alice", time.Hour, "api", "ws")
	for _, tc := range []struct {
		name         string
		h            http.Header
		header, want string // a header the answer must carry
	}{
		{"Sec-WebSocket-Version 8", http.Header{"Authorization": {"Bearer " + alice}, "Sec-WebSocket-Version": {"8"}},
			"Sec-WebSocket-Version", "13"},
		{"no Upgrade header", http.Header{"Authorization": {"Bearer " + alice}, "Upgrade": nil},
			"Upgrade", "websocket"},
	} {
		c, resp, body := e.dial("/ws", tc.h)
		if c != nil {
			t.Errorf("%s: upgraded; want 426", tc.name)
			continue
		}
		if checkRefusal(t, tc.name, resp.StatusCode, resp.Header, body, 426, "", "invalid_request", alice) &&
			resp.Header.Get(tc.header) != tc.want {
			t.Errorf("%s: %s = %q; want %q", tc.name, tc.header, resp.Header.Get(tc.header), tc.want)
		}
	}
}

// testSubprotocol: a browser's token in the subprotocol list opens the
// WebSocket, and the server never echoes the entry holding it.
func testSubprotocol(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withProfile())
	tok := e.issue("alice", time.Hour, "api", "ws")
	c, resp, body := e.dial("/ws", http.Header{"Sec-WebSocket-Protocol": {"wsauth.v1, wsauth.bearer." + tok}})
	if c == nil {
		t.Fatalf("token in the subprotocol: %d %s; want 101", resp.StatusCode, body)
	}
	if c.Protocol != "wsauth.v1" {
		t.Errorf("Sec-WebSocket-Protocol = %q; want wsauth.v1", c.Protocol)
	}
	for k, vs := range resp.Header {
		if strings.Contains(strings.Join(vs, ","), tok) {
			t.Errorf("response header %s holds the token", k)
		}
	}
	checkWelcomeAndEcho(t, c, "alice")

	c, resp, body = e.dial("/ws", http.Header{"Sec-WebSocket-Protocol": {"wsauth.bearer." + tok}})
	if c != nil {
		t.Fatal("token in the subprotocol without wsauth.v1: upgraded; want 400")
	}
	checkRefusal(t, "token in the subprotocol without wsauth.v1", resp.StatusCode, resp.Header, body, 400,
		`Bearer realm="wsauth", error="invalid_request"`, "invalid_request", tok)
}

func ticketsAbsent(e *env) string {
	tok := e.issue("probe", time.Hour, "api", "ws")
	if status, _, _ := mintTicketFor(e, tok); status == 404 || status == 405 {
		return fmt.Sprintf("POST /api/ws-ticket answers %d", status)
	}
	return ""
}

// testTicketOnce: a one-time ticket, minted with a token, opens one
// WebSocket as the token's subject, and only one.
func testTicketOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withProfile())
	tok := e.issue("alice", time.Hour, "api", "ws")
	status, ticket, _ := mintTicketFor(e, tok)
	if status != 200 || ticket == "" {
		t.Fatalf("POST /api/ws-ticket: %d, ticket %q; want 200 and a ticket", status, ticket)
	}
	if strings.Contains(ticket, tok) {
		t.Error("the ticket contains the token")
	}
	c, resp, body := e.dial("/ws?ticket="+url.QueryEscape(ticket), nil)
	if c == nil {
		t.Fatalf("GET /ws?ticket=: %d %s; want 101", resp.StatusCode, body)
	}
	checkWelcomeAndEcho(t, c, "alice")
	c, resp, _ = e.dial("/ws?ticket="+url.QueryEscape(ticket), nil)
	if c != nil || resp.StatusCode != 401 {
		t.Errorf("second use of a ticket: %v; want 401", resp.Status)
	}
}

// testExpiryClose: the server closes a WebSocket with 3000 when its token
// expires, without the client doing anything.
func testExpiryClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withProfile())
	tok := e.issue("alice", 2*time.Second, "api", "ws")
	c, resp, body := e.dial("/ws", bearer(tok))
	if c == nil {
		t.Fatalf("GET /ws: %d %s; want 101", resp.StatusCode, body)
	}
	c.ExpectClose(t, 6*time.Second, 3000, "")
}

// testRefresh: a refresh message with a new token of the same subject
// moves the connection onto it, so that it outlives the first token.
func testRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withProfile())
	short := e.issue("alice", 2*time.Second, "api", "ws")
	expiry := time.Now().Add(2 * time.Second)
	long := e.issue("alice", time.Hour, "api", "ws")
	c, _ := openWS(t, e, short)
	c.WriteText(`{"type":"refresh","token":"` + long + `"}`)
	if m, err := c.ReadJSON(5 * time.Second); err != nil || m["type"] != "refreshed" {
		t.Fatalf("answer to refresh = %v, %v; want type refreshed", m, err)
	}
	// Past the first token's expiry, and a recheck, the connection still
	// echoes. The wait is the clock running out, not a synchronization.
	<-time.After(time.Until(expiry) + profileRecheck + 500*time.Millisecond)
	c.WriteText("still here")
	if m, err := c.ReadJSON(5 * time.Second); err != nil || m["type"] != "echo" {
		t.Fatalf("after refresh, past the first token's expiry: %v, %v; want an echo", m, err)
	}
	c.Close()
}

// testRevocationClose: a revoked token's WebSocket is closed with 3000 at
// the next recheck (the profile's 1 s interval).
func testRevocationClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withProfile())
	tok := e.issue("alice", time.Hour, "api", "ws")
	c, _ := openWS(t, e, tok)
	e.svc.Revoke(tok)
	c.ExpectClose(t, 5*profileRecheck, 3000, "")
}

// testScopeLossClose: a token that loses the ws scope has its WebSocket
// closed with 3003 at the next recheck.
func testScopeLossClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withProfile())
	tok := e.issue("alice", time.Hour, "api", "ws")
	c, _ := openWS(t, e, tok)
	e.svc.SetScopes(tok, []string{"api"})
	c.ExpectClose(t, 5*profileRecheck, 3003, "")
}

// shutdownUntestable: against a target, the suite can stop it only when it
// knows its process (WSAUTH_TARGET_PID).
func shutdownUntestable() string {
	if remote() && os.Getenv("WSAUTH_TARGET_PID") == "" {
		return "set WSAUTH_TARGET_PID to let the suite stop the target with SIGTERM"
	}
	return ""
}

// testShutdown: stopping the server closes every WebSocket with 1001 and
// opens no new one. Against a target, it sends SIGTERM to
// WSAUTH_TARGET_PID: run it last.
func testShutdown(t *testing.T) {
	var pid int
	if remote() {
		var err error
		if pid, err = strconv.Atoi(os.Getenv("WSAUTH_TARGET_PID")); err != nil {
			t.Fatalf("WSAUTH_TARGET_PID: %v", err)
		}
		if isGoCommand(pid) {
			t.Fatalf("WSAUTH_TARGET_PID %d is the go command: under go run the server is its child, "+
				"which a SIGTERM to go leaves running. Give the server's own pid, or build it and run the binary", pid)
		}
	}
	e := newEnv(t, withProfile())
	tok := e.issue("alice", time.Hour, "api", "ws")
	var conns []*wsConn
	for range 3 {
		c, resp, body := e.dial("/ws", bearer(tok))
		if c == nil {
			t.Fatalf("GET /ws: %d %s; want 101", resp.StatusCode, body)
		}
		if _, err := c.ReadJSON(5 * time.Second); err != nil {
			t.Fatalf("reading welcome: %v", err)
		}
		conns = append(conns, c)
	}
	if remote() {
		p, _ := os.FindProcess(pid) // never fails on Unix
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM to the target: %v", err)
		}
	} else {
		done := make(chan struct{})
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			e.srv.Shutdown(ctx)
		}()
		defer func() { <-done }()
	}
	for _, c := range conns {
		c.ExpectClose(t, 10*time.Second, 1001, "")
	}
	// No new connection: refused at TCP, or answered 503.
	c, resp, _, err := e.dialer.Dial(e.URL+"/ws", bearer(tok))
	var opErr *net.OpError
	switch {
	case c != nil:
		c.nc.Close()
		t.Error("a WebSocket opened after shutdown")
	case err != nil && !errors.As(err, &opErr):
		t.Errorf("dial after shutdown: %v; want a refused connection or 503", err)
	case err == nil && resp.StatusCode != 503:
		t.Errorf("dial after shutdown: %s; want a refused connection or 503", resp.Status)
	}
}

// isGoCommand reports whether process pid is the go command, where /proc
// can tell (Linux).
func isGoCommand(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(comm)) == "go"
}
