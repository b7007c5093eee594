package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
	"wsauth/tokens"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to d for the goroutines of servers and
// connections to end, and returns the stacks of those that did not.
func leakedGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		var leaked []string
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if (strings.Contains(g, "main.") || strings.Contains(g, "wsauth/") || strings.Contains(g, "net/http.")) &&
				!strings.Contains(g, "leakedGoroutines") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		<-time.After(50 * time.Millisecond) // polling with a deadline
	}
}

const secret = "test-secret"

// newTokenService starts the fake token service on a real socket, for the
// client id "wsauth" with secret; it stops when the test ends.
func newTokenService(t *testing.T) (*faketokensvc.Service, *httptest.Server) {
	t.Helper()
	svc := faketokensvc.New(faketokensvc.Options{ClientID: "wsauth", ClientSecret: secret})
	ts := httptest.NewServer(svc.Handler())
	t.Cleanup(ts.Close)
	return svc, ts
}

// syncBuffer is an io.Writer that run can write to while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listening = regexp.MustCompile(`wsauth-minimal listening on (http://[^,]+), pid (\d+)`)

// startMinimal runs the command on a free loopback port against the token
// service at tokensvc and returns its URL. The run ends with the test, and
// must then return nil.
func startMinimal(t *testing.T, tokensvc string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	getenv := func(k string) string { return map[string]string{"WSAUTH_CLIENT_SECRET": secret}[k] }
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-introspect-url", tokensvc + "/introspect"}, getenv, out)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v after cancel; want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not return within 10s of cancel")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := listening.FindStringSubmatch(out.String()); m != nil {
			if pid, _ := strconv.Atoi(m[2]); pid != os.Getpid() {
				t.Errorf("listening line names pid %s; want this process, %d", m[2], os.Getpid())
			}
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, out)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line in 10s:\n%s", out)
		}
	}
}

// startFull serves cmd/wsauth's server, in process, against the token
// service at tokensvc.
func startFull(t *testing.T, tokensvc string) string {
	t.Helper()
	srv := server.New(server.Config{Validator: &tokens.Introspector{URL: tokensvc + "/introspect", ClientID: "wsauth", ClientSecret: secret}})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		ts.Close()
	})
	return ts.URL
}

// handshake sends GET /ws as a WebSocket opening handshake with the headers
// h, through net/http as a Go client that wants to know the status does,
// and returns the answer; the connection is closed.
func handshake(t *testing.T, base string, h http.Header) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/ws", nil)
	req.Header = http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
		"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	for k, vs := range h {
		req.Header[k] = vs
	}
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /ws: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, resp.Header, "" // the body is the WebSocket
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("GET /ws: reading the body: %v", err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// TestHookAnswersEveryRefusalWithTheSameBare403 is the limit of checking the
// token in x/net/websocket's Handshake hook: whatever error the hook
// returns, the library writes "403 Forbidden" and nothing else, so a client
// cannot tell a missing or invalid token (sign in again) from a token that
// may not open /ws. cmd/wsauth's server checks before the upgrade and says
// which, as RFC 6750 §3 asks.
func TestHookAnswersEveryRefusalWithTheSameBare403(t *testing.T) {
	svc, tokensvc := newTokenService(t)
	minimal, full := startMinimal(t, tokensvc.URL), startFull(t, tokensvc.URL)
	alice, _ := svc.Issue("alice", []string{"api", "ws"}, time.Hour)
	bob, _ := svc.Issue("bob", []string{"api"}, time.Hour)

	type answer struct {
		status    int
		challenge string // WWW-Authenticate
	}
	for _, tc := range []struct {
		name          string
		h             http.Header
		minimal, full answer
	}{
		{"missing token", nil,
			answer{403, ""}, answer{401, `Bearer realm="wsauth"`}},
		{"invalid token", bearer(strings.Repeat("A", 43)),
			answer{403, ""}, answer{401, `Bearer realm="wsauth", error="invalid_token"`}},
		{"token without the ws scope", bearer(bob),
			answer{403, ""}, answer{403, `Bearer realm="wsauth", error="insufficient_scope", scope="ws"`}},
		{"valid token", bearer(alice),
			answer{101, ""}, answer{101, ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := handshake(t, minimal, tc.h)
			if got := (answer{status, h.Get("WWW-Authenticate")}); got != tc.minimal {
				t.Errorf("minimal server: GET /ws with %s: %d, WWW-Authenticate %q; want %d, %q", tc.name, got.status, got.challenge, tc.minimal.status, tc.minimal.challenge)
			}
			if status == http.StatusForbidden && (len(h) != 0 || body != "") {
				t.Errorf("minimal server: GET /ws with %s: 403 with headers %v and body %q; want the hook's bare 403", tc.name, h, body)
			}

			status, h, _ = handshake(t, full, tc.h)
			if got := (answer{status, h.Get("WWW-Authenticate")}); got != tc.full {
				t.Errorf("full server: GET /ws with %s: %d, WWW-Authenticate %q; want %d, %q", tc.name, got.status, got.challenge, tc.full.status, tc.full.challenge)
			}
		})
	}
}

// TestAPI: GET /api/me answers 200 with the subject for a valid token
// carried any of the three ways, and RFC 6750 refusals otherwise.
func TestAPI(t *testing.T) {
	svc, tokensvc := newTokenService(t)
	base := startMinimal(t, tokensvc.URL)
	alice, _ := svc.Issue("alice", []string{"api", "ws"}, time.Hour)
	wsOnly, _ := svc.Issue("bob", []string{"ws"}, time.Hour)
	expired, _ := svc.Issue("carol", []string{"api"}, 0)
	for _, tc := range []struct {
		name      string
		path      string
		h         http.Header
		status    int
		challenge string
		want      string // the body's "sub" for a 200, else its "error"
	}{
		{"bearer", "/api/me", bearer(alice), 200, "", "alice"},
		{"cookie", "/api/me", http.Header{"Cookie": {"token=" + alice}}, 200, "", "alice"},
		{"query", "/api/me?token=" + alice, nil, 200, "", "alice"},
		{"bearer wins over a stale cookie", "/api/me", http.Header{"Authorization": {"Bearer " + alice}, "Cookie": {"token=" + expired}}, 200, "", "alice"},
		{"no token", "/api/me", nil, 401, `Bearer realm="wsauth"`, "missing_token"},
		{"expired token", "/api/me", bearer(expired), 401, `Bearer realm="wsauth", error="invalid_token"`, "invalid_token"},
		{"token without the api scope", "/api/me", bearer(wsOnly), 403, `Bearer realm="wsauth", error="insufficient_scope", scope="api"`, "insufficient_scope"},
		{"two tokens", "/api/me?token=" + wsOnly, bearer(alice), 400, `Bearer realm="wsauth", error="invalid_request"`, "invalid_request"},
		{"empty bearer", "/api/me", http.Header{"Authorization": {"Bearer "}}, 400, `Bearer realm="wsauth", error="invalid_request"`, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", base+tc.path, nil)
			for k, vs := range tc.h {
				req.Header[k] = vs
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Sub         string `json:"sub"`
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.status || resp.Header.Get("WWW-Authenticate") != tc.challenge {
				t.Errorf("GET /api/me with %s: %d, WWW-Authenticate %q; want %d, %q", tc.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), tc.status, tc.challenge)
			}
			got := body.Sub
			if tc.status != 200 {
				got = body.Error
				if body.Description == "" {
					t.Errorf("GET /api/me with %s: no error_description", tc.name)
				}
			}
			if got != tc.want {
				t.Errorf("GET /api/me with %s: body %+v; want %q", tc.name, body, tc.want)
			}
		})
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestWebSocket: the hook lets a valid token in, whose subject the welcome
// and the echoes name; refuses a page of another origin even with a valid
// cookie; and never echoes a subprotocol, which could hold a token.
func TestWebSocket(t *testing.T) {
	svc, tokensvc := newTokenService(t)
	base := startMinimal(t, tokensvc.URL)
	host := strings.TrimPrefix(base, "http://")
	alice, _ := svc.Issue("alice", []string{"api", "ws"}, time.Hour)

	t.Run("welcome and echo name the subject", func(t *testing.T) {
		cfg, _ := websocket.NewConfig("ws://"+host+"/ws", base)
		cfg.Header = bearer(alice)
		ws, err := websocket.DialConfig(cfg)
		if err != nil {
			t.Fatalf("dial with a valid token: %v", err)
		}
		defer ws.Close()
		type message struct{ Type, Sub, Data string }
		var welcome, echo message
		if err := websocket.JSON.Receive(ws, &welcome); err != nil || welcome != (message{"welcome", "alice", ""}) {
			t.Errorf("first message = %+v, %v; want a welcome for alice", welcome, err)
		}
		websocket.Message.Send(ws, "hello")
		if err := websocket.JSON.Receive(ws, &echo); err != nil || echo != (message{"echo", "alice", "hello"}) {
			t.Errorf("answer to hello = %+v, %v; want an echo of hello for alice", echo, err)
		}
	})

	for _, tc := range []struct {
		name   string
		h      http.Header
		status int
	}{
		{"cookie from this server's page", http.Header{"Cookie": {"token=" + alice}, "Origin": {base}}, 101},
		{"cookie from this server's page behind TLS", http.Header{"Cookie": {"token=" + alice}, "Origin": {"https://" + host}}, 101},
		{"cookie from another site's page (hijack)", http.Header{"Cookie": {"token=" + alice}, "Origin": {"https://evil.example"}}, 403},
		{"cookie from another port of this host", http.Header{"Cookie": {"token=" + alice}, "Origin": {"http://127.0.0.1:1"}}, 403},
		{"Origin null", http.Header{"Cookie": {"token=" + alice}, "Origin": {"null"}}, 403},
		{"subprotocols offered", http.Header{"Authorization": {"Bearer " + alice}, "Sec-Websocket-Protocol": {"wsauth.v1, wsauth.bearer." + alice}}, 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, _ := handshake(t, base, tc.h)
			if status != tc.status {
				t.Errorf("GET /ws with %s: %d; want %d", tc.name, status, tc.status)
			}
			if p := h.Get("Sec-Websocket-Protocol"); p != "" {
				t.Errorf("GET /ws with %s: Sec-WebSocket-Protocol %q; want none", tc.name, p)
			}
		})
	}
}

// TestFailsClosed: when the token system cannot answer, nobody gets in: 503
// on /api/me, the hook's 403 on /ws.
func TestFailsClosed(t *testing.T) {
	svc, tokensvc := newTokenService(t)
	base := startMinimal(t, tokensvc.URL)
	alice, _ := svc.Issue("alice", []string{"api", "ws"}, time.Hour)
	tokensvc.Close()

	req, _ := http.NewRequest("GET", base+"/api/me", nil)
	req.Header = bearer(alice)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if resp.StatusCode != 503 || !strings.Contains(string(b), `"error":"temporarily_unavailable"`) {
		t.Errorf("GET /api/me with the token system down: %d %s; want 503 temporarily_unavailable", resp.StatusCode, b)
	}
	if status, _, _ := handshake(t, base, bearer(alice)); status != 403 {
		t.Errorf("GET /ws with the token system down: %d; want 403", status)
	}
}

// TestRunNeedsTheClientSecret: without WSAUTH_CLIENT_SECRET run refuses to
// start, rather than serve answers the token system will refuse.
func TestRunNeedsTheClientSecret(t *testing.T) {
	err := run(context.Background(), []string{"-addr", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "WSAUTH_CLIENT_SECRET") {
		t.Errorf("run without WSAUTH_CLIENT_SECRET = %v; want an error naming it", err)
	}
}

// TestStaysMinimal keeps the file what README.md promises: one file under
// 200 lines that imports only the standard library, x/net/websocket and the
// project's tokens package.
func TestStaysMinimal(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(src), "\n"); n > 200 {
		t.Errorf("main.go has %d lines; want at most 200", n)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", src, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		first, _, _ := strings.Cut(path, "/")
		if strings.Contains(first, ".") && path != "golang.org/x/net/websocket" || first == "wsauth" && path != "wsauth/tokens" {
			t.Errorf("main.go imports %s; want only the standard library, golang.org/x/net/websocket and wsauth/tokens", path)
		}
	}
}

// TestREADMEQuotesTheCore: the first Go code in README.md is serveWS as
// main.go has it, less its "full server:" lines, which only the file keeps.
func TestREADMEQuotesTheCore(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	var quote, core []string
	for sc, in := bufio.NewScanner(strings.NewReader(string(readme))), false; sc.Scan(); {
		line := sc.Text()
		if line == "```go" {
			in = true
			continue
		}
		if in && line == "```" {
			break
		}
		if in {
			quote = append(quote, line)
		}
	}
	for sc, in := bufio.NewScanner(strings.NewReader(string(src))), false; sc.Scan(); {
		line := sc.Text()
		in = in || strings.HasPrefix(line, "func serveWS(")
		if in && !strings.HasPrefix(strings.TrimSpace(line), "// full server:") {
			core = append(core, line)
		}
		if in && line == "}" {
			break
		}
	}
	if len(core) == 0 {
		t.Fatal("main.go has no func serveWS")
	}
	if q, c := strings.Join(quote, "\n"), strings.Join(core, "\n"); q != c {
		t.Errorf("README.md's first Go code is\n%s\n\nwant serveWS from cmd/wsauth-minimal/main.go, without its \"full server:\" lines:\n%s", q, c)
	}
}
