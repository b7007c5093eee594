package integration_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"wsauth/server"
)

// TestNginx is the deployment's black-box test: a real nginx, configured with the
// block docs/DEPLOY.md shows, terminates TLS in front of two cmd/wsauth
// processes that share one cmd/fake-tokensvc, and every case below goes
// through it. Without nginx it skips, unless WSAUTH_REQUIRE_NGINX=1 (as in
// .ci/run), where a skip would hide that the deployment is untested.
func TestNginx(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)

	t.Run("WebSocket: welcome and echo over wss, on either instance", func(t *testing.T) {
		tok := d.ts.issue(t, "alice", time.Hour, "api ws")
		c, up := d.open(t, "alice", d.bearer(tok))
		if up != d.addrA && up != d.addrB {
			t.Errorf("X-Upstream = %q; want %s or %s", up, d.addrA, d.addrB)
		}
		expectEcho(t, c, "alice through nginx")
		c.Close()
	})

	t.Run("HTTP answers pass through", func(t *testing.T) {
		tok := d.ts.issue(t, "alice", time.Hour, "api ws")
		tests := []struct {
			name      string
			h         http.Header
			status    int
			challenge string
			body      string
		}{
			{"valid bearer", http.Header{"Authorization": {"Bearer " + tok}}, 200, "", `"sub":"alice"`},
			{"bad token", http.Header{"Authorization": {"Bearer " + strings.Repeat("x", 43)}}, 401, challengeInvalid, `"error":"invalid_token"`},
			{"no token", nil, 401, challengeNone, ""},
			{"cookie", http.Header{"Cookie": {"token=" + tok}}, 200, "", `"sub":"alice"`},
		}
		for _, tt := range tests {
			status, hdr, body := d.get(t, "/api/me", tt.h)
			if status != tt.status || hdr.Get("WWW-Authenticate") != tt.challenge || !strings.Contains(body, tt.body) {
				t.Errorf("GET /api/me through nginx, %s: %d %q %s; want %d %q containing %s",
					tt.name, status, hdr.Get("WWW-Authenticate"), body, tt.status, tt.challenge, tt.body)
			}
		}
		if status, _, body := d.get(t, "/healthz", nil); status != 200 || !strings.Contains(body, `"ok"`) {
			t.Errorf("GET /healthz through nginx: %d %s; want 200 ok", status, body)
		}
	})

	t.Run("WebSocket refusals pass through", func(t *testing.T) {
		good := d.ts.issue(t, "alice", time.Hour, "api ws")
		apiOnly := d.ts.issue(t, "bob", time.Hour, "api")
		tests := []struct {
			name      string
			path      string
			h         http.Header
			status    int
			challenge string
		}{
			{"bad token", "/ws", d.bearer(strings.Repeat("x", 43)), 401, challengeInvalid},
			{"no ws scope", "/ws", d.bearer(apiOnly), 403, challengeScope("ws")},
			{"cross-origin page", "/ws", http.Header{"Cookie": {"token=" + good}, "Origin": {"https://evil.example"}}, 403, ""},
			{"same host, other port", "/ws", http.Header{"Cookie": {"token=" + good}, "Origin": {"https://127.0.0.1:1"}}, 403, ""},
			// -allow-query-token=false: a token in the URL is refused.
			{"query token", "/ws?token=" + url.QueryEscape(good), http.Header{"Origin": {d.sameOrigin}}, 400,
				`Bearer realm="wsauth", error="invalid_request"`},
		}
		for _, tt := range tests {
			c, _, resp, body := d.dial(t, tt.path, tt.h)
			if c != nil {
				t.Errorf("dial /ws through nginx, %s: 101; want %d", tt.name, tt.status)
				c.Close()
				continue
			}
			if resp.StatusCode != tt.status || resp.Header.Get("WWW-Authenticate") != tt.challenge {
				t.Errorf("dial /ws through nginx, %s: %d %q %s; want %d %q",
					tt.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body, tt.status, tt.challenge)
			}
		}
		// The pages wsauth serves itself, and -allowed-origins, may connect.
		for _, origin := range []string{d.sameOrigin, "https://app.example.com"} {
			c, _, resp, body := d.dial(t, "/ws", http.Header{"Cookie": {"token=" + good}, "Origin": {origin}})
			if c == nil {
				t.Errorf("dial /ws through nginx with Origin %s: %d %s; want 101", origin, resp.StatusCode, body)
				continue
			}
			c.Close()
		}
	})

	t.Run("a ticket minted on one instance opens a WebSocket on the other", func(t *testing.T) {
		tok := d.ts.issue(t, "ticket-user", time.Hour, "api ws")
		crossed := false
		for i := 0; i < 6 && !crossed; i++ {
			h := d.bearer(tok)
			h.Set("Content-Type", "application/json")
			status, hdr, body := d.post(t, "/api/ws-ticket", h, "{}")
			var m struct{ Ticket string }
			if err := json.Unmarshal([]byte(body), &m); status != 200 || err != nil || m.Ticket == "" {
				t.Fatalf("POST /api/ws-ticket through nginx: %d %s; want 200 and a ticket", status, body)
			}
			rememberSecret(m.Ticket)
			d.tickets = append(d.tickets, m.Ticket)
			minted := upstreamOf(t, hdr)
			c, up, resp, body := d.dial(t, "/ws?ticket="+url.QueryEscape(m.Ticket), http.Header{"Origin": {d.sameOrigin}})
			if c == nil {
				t.Fatalf("ticket minted by %s: %d %s; want 101", minted, resp.StatusCode, body)
			}
			// Kept open until the subtest ends, so that least_conn sends
			// the next requests elsewhere.
			defer c.Close()
			expectEcho(t, c, "a WebSocket opened by ticket")
			crossed = up != minted
		}
		if !crossed {
			t.Errorf("6 tickets were each redeemed by the instance that minted them; want one minted on A and used on B or back")
		}
	})

	t.Run("client address is the real client, whatever it claims", func(t *testing.T) {
		tok := d.ts.issue(t, "ip-check", time.Hour, "api ws")
		h := d.bearer(tok)
		h.Set("X-Forwarded-For", "203.0.113.9")
		if status, _, body := d.get(t, "/api/me", h); status != 200 {
			t.Fatalf("GET /api/me through nginx: %d %s; want 200", status, body)
		}
		c, _ := d.open(t, "ip-check", h)
		c.Close()
		for _, path := range []string{"/api/me", "/ws"} {
			var line string
			waitFor(t, 5*time.Second, "the request log line of "+path, func() bool {
				line = d.a.out.find("path="+path+" ", "sub=ip-check") + d.b.out.find("path="+path+" ", "sub=ip-check")
				return line != ""
			})
			if !strings.Contains(line+" ", " client=127.0.0.2 ") {
				t.Errorf("log line of %s through nginx from 127.0.0.2 claiming 203.0.113.9:\n%s\nwant client=127.0.0.2", path, line)
			}
		}
	})

	t.Run("the failure throttle counts the real client, not nginx", func(t *testing.T) {
		// 127.0.0.4 fails until both instances refuse it. Without
		// -trusted-proxies every client would share nginx's bucket and
		// 127.0.0.5 would be refused too.
		drained, fresh := d.clientFrom(t, 4), d.clientFrom(t, 5)
		bad := func(i int) http.Header { return d.bearer(fmt.Sprintf("bad-token-%033d", i)) }
		throttled := map[string]bool{}
		for i := 0; !throttled[d.addrA] || !throttled[d.addrB]; i++ {
			if i == 200 {
				t.Fatalf("200 bad tokens from one client through nginx; want both instances to answer 429 (got it from %v)", throttled)
			}
			switch status, hdr, body := d.getFrom(t, drained, "/api/me", bad(i)); status {
			case 401:
			case 429:
				throttled[upstreamOf(t, hdr)] = true
			default:
				t.Fatalf("GET /api/me with bad token %d: %d %s; want 401 or 429", i, status, body)
			}
		}
		spoofed := bad(-1)
		spoofed.Set("X-Forwarded-For", "198.51.100.7")
		if status, _, body := d.getFrom(t, drained, "/api/me", spoofed); status != 429 {
			t.Errorf("throttled client claiming another address in X-Forwarded-For: %d %s; want 429", status, body)
		}
		if status, _, body := d.getFrom(t, fresh, "/api/me", bad(-2)); status != 401 {
			t.Errorf("another client behind the same nginx: %d %s; want 401, its own bucket is full", status, body)
		}
	})

	t.Run("expiry closes with 3000 through nginx", func(t *testing.T) {
		tok := d.ts.issue(t, "brief", 2*time.Second, "ws")
		c, _ := d.open(t, "a 2s token", d.bearer(tok))
		c.ExpectClose(t, 10*time.Second, 3000, "token expired")
	})

	t.Run("revocation closes with 3000 through nginx", func(t *testing.T) {
		tok := d.ts.issue(t, "mallory", time.Hour, "ws")
		c, _ := d.open(t, "mallory", d.bearer(tok))
		expectEcho(t, c, "mallory before revocation")
		d.ts.revoke(t, tok)
		c.ExpectClose(t, 5*time.Second, 3000, "token revoked")
	})

	// After the others: it stops instance A.
	t.Run("stopping one instance: 1001 to its clients, the other serves on", func(t *testing.T) {
		type client struct {
			tok string
			c   *wsConn
			up  string
		}
		var clients []client
		on := map[string]int{}
		for i := 0; on[d.addrA] == 0 || on[d.addrB] == 0; i++ {
			if i == 8 {
				t.Fatalf("8 WebSockets through nginx landed %v; want some on each of %s and %s", on, d.addrA, d.addrB)
			}
			tok := d.ts.issue(t, fmt.Sprintf("client-%d", i), time.Hour, "api ws")
			c, up := d.open(t, fmt.Sprintf("client %d", i), d.bearer(tok))
			clients = append(clients, client{tok, c, up})
			on[up]++
		}

		d.a.signal(t, syscall.SIGTERM)
		for _, cl := range clients {
			if cl.up == d.addrA {
				cl.c.ExpectClose(t, 10*time.Second, 1001, "shutting down")
			}
		}
		d.a.wait(t, 15*time.Second)
		if !strings.Contains(d.a.out.String(), "closed WebSocket connections") {
			t.Errorf("instance A's log lacks its shutdown line:\n%s", d.a.out.String())
		}
		for _, cl := range clients {
			if cl.up == d.addrB {
				expectEcho(t, cl.c, "a client of B after A stopped")
			}
		}
		for _, cl := range clients {
			if cl.up != d.addrA {
				continue
			}
			c, up := d.open(t, "reconnect after A stopped", d.bearer(cl.tok))
			if up != d.addrB {
				t.Errorf("reconnect after A stopped landed on %q; want B (%s)", up, d.addrB)
			}
			expectEcho(t, c, "a client of A reconnected")
			c.Close()
		}
		for _, cl := range clients {
			if cl.up == d.addrB {
				cl.c.Close()
			}
		}
	})

	t.Run("nginx's access log holds neither token nor ticket", func(t *testing.T) {
		// nginx writes a WebSocket's access log line when it closes: stop
		// it, then read the log.
		d.px.proc.signal(t, syscall.SIGQUIT)
		d.px.proc.wait(t, 15*time.Second)
		accessLog, err := os.ReadFile(filepath.Join(d.dir, "access.log"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(accessLog, []byte("GET /ws HTTP/1.1\" 101")) || !bytes.Contains(accessLog, []byte("GET /api/me HTTP/1.1\" 401")) {
			t.Errorf("nginx's access log lacks the WebSocket and HTTP requests:\n%s", accessLog)
		}
		for _, tok := range d.ts.tokens() {
			if bytes.Contains(accessLog, []byte(tok)) {
				t.Errorf("nginx's access log, with DEPLOY.md's log_format, contains a token")
			}
		}
		for _, ticket := range d.tickets {
			if bytes.Contains(accessLog, []byte(ticket)) || bytes.Contains(accessLog, []byte(url.QueryEscape(ticket))) {
				t.Errorf("nginx's access log, with DEPLOY.md's log_format, contains a ticket")
			}
		}
	})
}

// deployment is DEPLOY.md's deployment, run for TestNginx: nginx in front
// of instances A and B of cmd/wsauth, which share a cmd/fake-tokensvc.
type deployment struct {
	a, b         *proc
	addrA, addrB string // the instances' host:port, as X-Upstream names them
	px           *nginxProc
	dir          string // nginx's files, its access log among them
	base         string // https://nginx's address
	sameOrigin   string // the Origin of the pages the deployment serves
	ts           *tokenAdmin
	client       *http.Client // from 127.0.0.2
	dialer       wsDialer     // from 127.0.0.2
	tickets      []string     // every ticket minted, for the access log check
}

// newDeployment builds the commands and starts the fake, the two instances
// with DEPLOY.md's flags, and nginx with DEPLOY.md's configuration.
func newDeployment(t *testing.T) *deployment {
	nginx := findNginx(t)
	doc, err := os.ReadFile(filepath.Join("..", "docs", "DEPLOY.md"))
	if err != nil {
		t.Fatal(err)
	}
	bin := buildCommands(t, "wsauth", "fake-tokensvc")
	d := &deployment{dir: t.TempDir()}
	const secret = "proxy-test-secret"
	// DEPLOY.md: every instance gets the same ticket key, from the
	// environment rather than the command line, where ps would show it.
	ticketKey := "WSAUTH_TICKET_KEY=" + strings.Repeat("5a", 32)

	svc := startProc(t, "tokensvc", filepath.Join(bin, "fake-tokensvc"),
		[]string{"-addr", "127.0.0.1:0"}, "TOKENSVC_CLIENT_SECRET="+secret)
	svcURL := svc.waitURL(t, "fake token service listening")
	d.ts = &tokenAdmin{url: svcURL}

	// Each instance runs with DEPLOY.md's flags; only its address and the
	// token system's URL change, and -recheck shrinks so that a revocation
	// shows within the test.
	args := deployFlags(t, doc, map[string]string{
		"-addr":           "127.0.0.1:0",
		"-introspect-url": svcURL + "/introspect",
	})
	args = append(args, "-recheck", "200ms")
	d.a = startProc(t, "A", filepath.Join(bin, "wsauth"), args, "WSAUTH_CLIENT_SECRET="+secret, ticketKey)
	d.b = startProc(t, "B", filepath.Join(bin, "wsauth"), args, "WSAUTH_CLIENT_SECRET="+secret, ticketKey)
	d.addrA = strings.TrimPrefix(d.a.waitURL(t, "wsauth listening"), "http://")
	d.addrB = strings.TrimPrefix(d.b.waitURL(t, "wsauth listening"), "http://")

	d.px = startNginx(t, nginx, d.dir, doc, d.addrA, d.addrB)
	d.base = "https://" + d.px.addr
	d.sameOrigin = d.base
	d.client = d.clientFrom(t, 2)
	d.dialer = wsDialer{TLS: &tls.Config{RootCAs: d.px.roots}, Local: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	return d
}

// clientFrom is an HTTP client through nginx that dials from 127.0.0.last.
// Clients dial from 127.0.0.2 and up, addresses that are not nginx's: the
// instances must see them, not nginx's 127.0.0.1.
func (d *deployment) clientFrom(t *testing.T, last byte) *http.Client {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: d.px.roots},
		DialContext:     (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, last)}}).DialContext,
	}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// getFrom sends GET path with h through nginx by client.
func (d *deployment) getFrom(t *testing.T, client *http.Client, path string, h http.Header) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", d.base+path, nil)
	copyHeader(req.Header, h)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s through nginx: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, string(body)
}

// get sends GET path with h through nginx from 127.0.0.2.
func (d *deployment) get(t *testing.T, path string, h http.Header) (int, http.Header, string) {
	t.Helper()
	return d.getFrom(t, d.client, path, h)
}

// post sends POST path with h and body through nginx from 127.0.0.2.
func (d *deployment) post(t *testing.T, path string, h http.Header, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", d.base+path, strings.NewReader(body))
	copyHeader(req.Header, h)
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s through nginx: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, string(b)
}

// dial opens a WebSocket through nginx; on 101 it reads the welcome and
// returns the instance nginx chose.
func (d *deployment) dial(t *testing.T, path string, h http.Header) (*wsConn, string, *http.Response, string) {
	t.Helper()
	c, resp, body, err := d.dialer.Dial(d.base+path, h)
	path, _, _ = strings.Cut(path, "?") // for messages: the query may hold a credential
	if err != nil {
		t.Fatalf("dial %s through nginx: %v", path, err)
	}
	if c == nil {
		return nil, "", resp, body
	}
	t.Cleanup(func() { c.nc.Close() })
	m, err := c.ReadJSON(5 * time.Second)
	if err != nil || m["type"] != "welcome" {
		t.Fatalf("dial %s through nginx: first message = %v, %v; want the welcome", path, m, err)
	}
	return c, upstreamOf(t, resp.Header), resp, body
}

// open is dial for a WebSocket that must open.
func (d *deployment) open(t *testing.T, what string, h http.Header) (*wsConn, string) {
	t.Helper()
	c, up, resp, body := d.dial(t, "/ws", h)
	if c == nil {
		t.Fatalf("%s: dial /ws through nginx: %d %q %s; want 101",
			what, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	return c, up
}

// bearer is tok as a bearer header, from a page of the deployment's own
// origin.
func (d *deployment) bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}, "Origin": {d.sameOrigin}}
}

// findNginx returns the nginx binary, or skips the test when there is
// none, unless WSAUTH_REQUIRE_NGINX=1 makes that a failure.
func findNginx(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	msg := "nginx is not on PATH or at /usr/sbin/nginx; .ci/run installs it (apt-get install nginx)"
	if os.Getenv("WSAUTH_REQUIRE_NGINX") == "1" {
		t.Fatal(msg + ", and WSAUTH_REQUIRE_NGINX=1 forbids skipping")
	}
	skipSuite(t, "proxy (nginx)", msg)
	return ""
}

// buildCommands builds cmd/<name> for each name into a temporary directory.
func buildCommands(t *testing.T, names ...string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building the commands needs the go tool: %v", err)
	}
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, n := range names {
		args = append(args, "wsauth/cmd/"+n)
	}
	if out, err := exec.Command(goBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return dir
}

// deployBlock returns the text between DEPLOY.md's BEGIN and END markers
// of name, without the code fence.
func deployBlock(t *testing.T, doc []byte, name string) string {
	t.Helper()
	begin, end := "<!-- BEGIN "+name+" -->", "<!-- END "+name+" -->"
	_, rest, ok := strings.Cut(string(doc), begin)
	block, _, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("docs/DEPLOY.md has no %q … %q block", begin, end)
	}
	var lines []string
	for l := range strings.Lines(block) {
		if !strings.HasPrefix(l, "```") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "")
}

// deployFlags returns the wsauth flags DEPLOY.md shows, with the values of
// the flags in set replaced. Each flag in set must be there.
func deployFlags(t *testing.T, doc []byte, set map[string]string) []string {
	t.Helper()
	fields := strings.Fields(strings.ReplaceAll(deployBlock(t, doc, "wsauth flags"), "\\\n", " "))
	if len(fields) == 0 || fields[0] != "wsauth" {
		t.Fatalf("DEPLOY.md's wsauth flags block does not start with the command: %q", fields)
	}
	args := fields[1:]
	for flag, v := range set {
		i := slices.Index(args, flag)
		if i < 0 || i+1 >= len(args) {
			t.Fatalf("DEPLOY.md's wsauth flags no longer set %s; update TestNginx", flag)
		}
		args[i+1] = v
	}
	return args
}

// nginxConfig returns DEPLOY.md's nginx block with the test's addresses,
// port and files in place of the production ones. Each replaced string must
// be in the block exactly once, so that the test notices when the document
// changes under it.
func nginxConfig(t *testing.T, doc []byte, replace [][2]string) string {
	t.Helper()
	conf := deployBlock(t, doc, "nginx.conf")
	for _, r := range replace {
		if n := strings.Count(conf, r[0]); n != 1 {
			t.Fatalf("DEPLOY.md's nginx block has %q %d times; want once (update TestNginx's replacements)", r[0], n)
		}
		conf = strings.Replace(conf, r[0], r[1], 1)
	}
	return conf
}

// nginxProc is a running nginx.
type nginxProc struct {
	proc  *proc
	addr  string // 127.0.0.1:port, TLS
	roots *x509.CertPool
}

// startNginx runs nginx in the foreground with its files in dir: a wrapper
// nginx.conf of test-only settings (pid, logs, temporary files, worker
// user, and an X-Upstream header that tells the test which instance served)
// that includes DEPLOY.md's block. It retries on a port taken meanwhile.
func startNginx(t *testing.T, bin, dir string, doc []byte, addrA, addrB string) *nginxProc {
	t.Helper()
	roots := writeCert(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // the default, nobody, could not use dir
	}
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		conf := nginxConfig(t, doc, [][2]string{
			{"listen 443 ssl;", fmt.Sprintf("listen 127.0.0.1:%d ssl;", port)},
			{"server 127.0.0.1:8081 ", "server " + addrA + " "},
			{"server 127.0.0.1:8082 ", "server " + addrB + " "},
			{"/etc/nginx/tls/wsauth.example.com.crt", filepath.Join(dir, "cert.pem")},
			{"/etc/nginx/tls/wsauth.example.com.key", filepath.Join(dir, "key.pem")},
			{"/var/log/nginx/wsauth.access.log", filepath.Join(dir, "access.log")},
		})
		if err := os.WriteFile(filepath.Join(dir, "wsauth.conf"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		main := fmt.Sprintf(`%[2]s
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    add_header X-Upstream $upstream_addr always;
    include %[1]s/wsauth.conf;
}
`, dir, user)
		if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, "error.log"))
		p := startProc(t, "nginx", bin, []string{"-p", dir + "/", "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;"})
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		up := false
		waitFor(t, 10*time.Second, "nginx to listen on "+addr, func() bool {
			if p.exited() {
				return true
			}
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
				up = true
			}
			return up
		})
		if up && !p.exited() {
			return &nginxProc{proc: p, addr: addr, roots: roots}
		}
		p.wait(t, 5*time.Second)
		errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		if attempt < 3 && bytes.Contains(errLog, []byte("Address already in use")) {
			continue
		}
		t.Fatalf("nginx did not start:\n%s\n%s", p.out.String(), errLog)
	}
}

// upstreamOf returns the instance that answered, from the X-Upstream header
// the test's nginx.conf adds: the last address nginx tried.
func upstreamOf(t *testing.T, h http.Header) string {
	t.Helper()
	v := h.Get("X-Upstream")
	if v == "" {
		t.Fatalf("the answer has no X-Upstream header: has DEPLOY.md's block an add_header, which stops the test's from being inherited?")
	}
	addrs := strings.Split(v, ",")
	return strings.TrimSpace(addrs[len(addrs)-1])
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key, and
// returns a pool that trusts it.
func writeCert(t *testing.T, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "wsauth proxy test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"wsauth.example.com"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return roots
}

// proc is a child process whose output goes, line by line, to the test
// log and to the suite's token-leak check, and is kept for searching.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lineLog
	done chan struct{} // closed when the process has exited and its output is read
	err  error         // Wait's answer, once done is closed
}

// startProc starts bin and stops it when the test ends: SIGTERM, then
// SIGKILL if it has not exited within 10 seconds.
func startProc(t *testing.T, name, bin string, args []string, env ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &lineLog{t: t, name: name}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if !p.exited() {
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s ignored SIGTERM for 10s; killing it", name)
			p.cmd.Process.Kill()
			<-p.done
		}
		p.out.stop()
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s: %v", p.name, err)
	}
}

// wait waits for the process to exit and fails the test unless it exited
// cleanly.
func (p *proc) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s still running %v after it was told to stop", p.name, d)
	}
	if p.err != nil {
		t.Errorf("%s exited: %v", p.name, p.err)
	}
}

var listenURL = regexp.MustCompile(`url=(http://\S+)`)

// waitURL waits for the log line msg, which carries the URL the process
// listens on, and returns that URL.
func (p *proc) waitURL(t *testing.T, msg string) string {
	t.Helper()
	var line string
	waitFor(t, 30*time.Second, p.name+" to log "+msg, func() bool {
		line = p.out.find(msg)
		return line != "" || p.exited()
	})
	m := listenURL.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("%s did not log the URL it listens on:\n%s", p.name, p.out.String())
	}
	return m[1]
}

// lineLog collects a process's output.
type lineLog struct {
	t    *testing.T
	name string

	mu      sync.Mutex
	partial []byte
	lines   []string
	stopped bool
}

func (l *lineLog) Write(p []byte) (int, error) {
	leakMu.Lock()
	allLogs.Write(p)
	leakMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		l.lines = append(l.lines, line)
		if !l.stopped {
			l.t.Logf("%s: %s", l.name, line)
		}
	}
	return len(p), nil
}

// stop ends the copies to the test log: the test may be over.
func (l *lineLog) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

// find returns the first line containing every one of parts, or "".
func (l *lineLog) find(parts ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
			return line
		}
	}
	return ""
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// tokenAdmin issues and revokes tokens through the fake token service's
// admin API, and records them for the checks that no log holds one.
type tokenAdmin struct {
	url string

	mu     sync.Mutex
	issued []string
}

func (a *tokenAdmin) post(t *testing.T, path string, body any, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := httpClient.Post(a.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, msg)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
	}
}

// issue returns a new token for sub with the space-separated scope.
func (a *tokenAdmin) issue(t *testing.T, sub string, ttl time.Duration, scope string) string {
	t.Helper()
	secs := int64(ttl / time.Second)
	var got struct{ Token string }
	a.post(t, "/admin/tokens", map[string]any{"sub": sub, "scope": scope, "ttl_seconds": secs}, &got)
	if got.Token == "" {
		t.Fatal("POST /admin/tokens returned no token")
	}
	rememberSecret(got.Token)
	a.mu.Lock()
	a.issued = append(a.issued, got.Token)
	a.mu.Unlock()
	return got.Token
}

func (a *tokenAdmin) revoke(t *testing.T, tok string) {
	t.Helper()
	a.post(t, "/admin/revoke", map[string]string{"token": tok}, nil)
}

func (a *tokenAdmin) tokens() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.issued)
}

// copyHeader copies the header h into dst.
func copyHeader(dst, h http.Header) {
	for k, vs := range h {
		dst[k] = slices.Clone(vs)
	}
}

// TestForwardedProtoSecureCookie: behind a TLS-terminating proxy the
// server's connection is plain HTTP, and only a trusted proxy's
// X-Forwarded-Proto tells it the client spoke TLS. The demo's sign-in
// cookie shows what the server believed: Secure or not.
func TestForwardedProtoSecureCookie(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		trusted string
		proto   string
		secure  bool
	}{
		{"no proxy trusted, no header", "", "", false},
		{"no proxy trusted, spoofed https", "", "https", false},
		{"another proxy trusted, spoofed https", "10.0.0.0/8", "https", false},
		{"trusted proxy, https", "127.0.0.0/8", "https", true},
		{"trusted proxy, http", "127.0.0.0/8", "http", false},
		{"trusted proxy, no header", "127.0.0.0/8", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			trusted, err := server.ParseTrustedProxies(tt.trusted)
			if err != nil {
				t.Fatal(err)
			}
			e := newDemoEnv(t, withServer(func(c *server.Config) { c.TrustedProxies = trusted }))
			h := http.Header{"Content-Type": {"application/json"}}
			if tt.proto != "" {
				h.Set("X-Forwarded-Proto", tt.proto)
			}
			status, hdr, body := e.post("/dev/login", h, `{"sub":"alice","ttl":60}`)
			if status != 200 {
				t.Fatalf("POST /dev/login: %d %s; want 200", status, body)
			}
			if ck := tokenCookie(t, hdr); ck.Secure != tt.secure {
				t.Errorf("POST /dev/login from 127.0.0.1 with X-Forwarded-Proto %q, trusted %q: cookie Secure = %v; want %v",
					tt.proto, tt.trusted, ck.Secure, tt.secure)
			}
		})
	}
}
