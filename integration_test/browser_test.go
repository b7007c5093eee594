package integration_test

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"wsauth/server"
)

// The browser path, proven in a real browser: headless Chromium, driven
// through os/exec, loads test pages from httptest servers on loopback. The
// pages open WebSockets the ways a browser can and report what they saw by
// POST /report to the server that served them; the test waits on those
// reports, with a deadline.
//
// Three servers take part:
//   - A, the wsauth server in demo mode, with the test pages on its origin;
//   - B, another origin (another port, the same host, so the cookie set by
//     A is still sent: same-site), serving a hijacking page, which also
//     plants a cookie of its own for A's /ws;
//   - C, a wsauth server with -ws-reject=close, reached as localhost so
//     that A's cookie for 127.0.0.1 does not reach it.
//
// Chromium comes from $CHROME_BIN or PATH (chromium, chromium-browser,
// google-chrome). Without one the test skips, unless WSAUTH_REQUIRE_BROWSER
// is set, as .ci/run sets it: CI must not pass by skipping.

// findChrome returns the Chromium to run, or skips the test.
func findChrome(t *testing.T) string {
	t.Helper()
	names := []string{"chromium", "chromium-browser", "google-chrome"}
	if bin := os.Getenv("CHROME_BIN"); bin != "" {
		names = []string{bin}
	}
	for _, name := range names {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	msg := "no Chromium found: set $CHROME_BIN, or put chromium, chromium-browser or google-chrome on PATH (apt-get install chromium)"
	if os.Getenv("WSAUTH_REQUIRE_BROWSER") != "" {
		t.Fatal(msg + "; WSAUTH_REQUIRE_BROWSER is set, so this is a failure")
	}
	skipSuite(t, "browser (Chromium)", msg)
	return ""
}

// startChrome runs headless Chromium on url with a fresh profile, and kills
// it and every process it started when the test ends.
func startChrome(t *testing.T, bin, url string) *lockedBuffer {
	t.Helper()
	profile := t.TempDir() // removed after the kill below: cleanups run last-in first-out
	cmd := exec.Command(bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--no-default-browser-check", "--mute-audio", "--password-store=basic",
		"--enable-logging=stderr", "--v=0",
		"--user-data-dir="+profile, url)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // one group: renderers, GPU and zygote die with it
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		// The renderers, reparented once the browser died, are reaped by
		// init; wait until the group is empty so that none outlives the test.
		deadline := time.Now().Add(5 * time.Second)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) == nil {
			if time.Now().After(deadline) {
				t.Errorf("Chromium's processes (group %d) still exist 5 s after SIGKILL", cmd.Process.Pid)
				break
			}
			<-tick.C
		}
		if t.Failed() {
			t.Logf("Chromium's output:\n%s", out.tail(8<<10))
		}
	})
	return out
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.b.String()
	return s[max(0, len(s)-n):]
}

// pageReport is what a test page saw in one scenario: named lists of
// events, such as ["open:", "welcome:alice", "echo:alice:hi",
// "close:1000:done"], or the error that stopped it.
type pageReport struct {
	Name  string              `json:"name"`
	Error string              `json:"error"`
	Lists map[string][]string `json:"lists"`
}

// reports collects the pages' reports.
type reports struct {
	ch  chan pageReport
	got map[string]pageReport
}

func newReports() *reports {
	return &reports{ch: make(chan pageReport, 64), got: map[string]pageReport{}}
}

// handler is POST /report on every test server.
func (r *reports) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var rep pageReport
		if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<20)).Decode(&rep); err != nil {
			http.Error(w, "bad report", http.StatusBadRequest)
			return
		}
		select {
		case r.ch <- rep:
		default: // a runaway page must not block the server
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// wait returns the report called name, waiting for it until deadline.
func (r *reports) wait(t *testing.T, name string, deadline time.Time) pageReport {
	t.Helper()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		if rep, ok := r.got[name]; ok {
			if rep.Error != "" {
				t.Fatalf("page, %s: %s", name, rep.Error)
			}
			return rep
		}
		select {
		case rep := <-r.ch:
			r.got[rep.Name] = rep
		case <-timer.C:
			t.Fatalf("no report %q from the browser by the deadline; got %v", name, keys(r.got))
		}
	}
}

func keys(m map[string]pageReport) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// pageLib is the script every test page shares.
const pageLib = `
const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";

async function report(name, body) {
  await fetch("/report", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify(Object.assign({name}, body))});
}

// step runs one scenario and reports its event lists, or its error.
async function step(name, fn) {
  try {
    await report(name, {lists: await fn()});
  } catch (e) {
    await report(name, {error: String(e)});
  }
}

// session opens a WebSocket and records what happens until it closes. With
// say, it sends say after the welcome and closes after the echo.
function session(url, protocols, say, timeoutMs = 10000) {
  return new Promise((resolve) => {
    const ev = [];
    const ws = new WebSocket(url, protocols);
    const timer = setTimeout(() => { ev.push("timeout"); resolve(ev); ws.close(); }, timeoutMs);
    ws.onopen = () => ev.push("open:" + ws.protocol);
    ws.onerror = () => ev.push("error");
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      ev.push(m.type + ":" + (m.sub || "") + (m.data !== undefined ? ":" + m.data : ""));
      if (m.type === "welcome" && say) ws.send(say);
      if (m.type === "echo") ws.close(1000, "done");
    };
    ws.onclose = (e) => { clearTimeout(timer); ev.push("close:" + e.code + ":" + e.reason); resolve(ev); };
  });
}

async function postJSON(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  if (!r.ok) throw new Error("POST " + path + ": " + r.status + " " + await r.text());
  return r.json();
}

// openDemoPage loads the real page, /, in a same-origin frame and returns
// two readers of it: $ finds an element by id, texts lists the page's log
// lines (of one kind, if given).
async function openDemoPage() {
  const f = document.createElement("iframe");
  f.width = 1000; f.height = 1400;
  const loaded = new Promise((res) => f.onload = res);
  f.src = "/";
  document.body.append(f);
  await loaded;
  const d = () => f.contentDocument;
  return {
    $: (id) => d().getElementById(id),
    texts: (kind) => [...d().querySelectorAll("#log li" + (kind ? "[data-kind=" + kind + "]" : "") + " span")].map((s) => s.textContent),
  };
}

function until(what, cond, ms = 10000) {
  return new Promise((resolve, reject) => {
    const end = Date.now() + ms;
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() > end) return reject(new Error("timed out waiting for " + what));
      setTimeout(tick, 25);
    };
    tick();
  });
}
`

// mainPage runs on A: scenarios 2, the demo page, 1, 4, 5, the
// subprotocol, and 6; then it goes to B's hijacking page.
var mainPage = template.Must(template.New("main").Parse(`<!doctype html>
<title>wsauth browser test</title>
<body>
<script>{{.Lib}}
// demoPage drives the real page, /, in a same-origin frame: sign in, then
// connect each way, send, and read its log.
async function demoPage() {
  const {$, texts} = await openDemoPage();
  await until("the page to check the sign-in", () => $("who").textContent !== "Checking…");
  const before = $("who").textContent;
  $("sub").value = "dora";
  $("login").click();
  await until("sign-in as dora", () => $("who").dataset.sub === "dora");
  for (const way of ["cookie", "ticket", "query", "subprotocol"]) {
    const n = texts("welcome").length;
    $("connect-" + way).click();
    await until("welcome by " + way, () => texts("welcome").length > n && $("state").dataset.state === "open");
    $("msg").value = "hi by " + way;
    $("send").click();
    await until("echo by " + way, () => texts("echo").some((t) => t.endsWith("hi by " + way)));
  }
  $("disconnect").click();
  await until("the close", () => texts("close").some((t) => t.includes("bye")));
  return {before: [before], who: [$("who").textContent], log: texts()};
}

(async () => {
  await step("no-cookie", async () => ({ws: await session(wsBase, [], "hi")}));
  await step("demo-page", demoPage);
  let token;
  await step("cookie", async () => {
    token = (await postJSON("/dev/login", {sub: "alice"})).token;
    return {ws: await session(wsBase, [], "hi")};
  });
  await step("ticket", async () => {
    const t = (await postJSON("/api/ws-ticket", {})).ticket;
    const url = wsBase + "?ticket=" + encodeURIComponent(t);
    return {first: await session(url, [], "hi"), replay: await session(url, [], "hi")};
  });
  await step("query", async () => ({ws: await session(wsBase + "?token=" + encodeURIComponent(token), [], "hi")}));
  await step("subprotocol", async () => ({ws: await session(wsBase, ["wsauth.v1", "wsauth.bearer." + token], "hi")}));
  await step("expiry", async () => {
    const short = await (await fetch("/test/short-token")).text();
    return {ws: await session(wsBase + "?token=" + encodeURIComponent(short), [], null, 20000)};
  });
  location.href = {{.Next}};
})();
</script>
`))

// hijackPage runs on B, another origin: scenario 3. It opens a WebSocket to
// A, which carries A's cookie, and tries to mint a ticket the way a
// cross-site form would. Then it plants the attacker's token as a cookie
// for A's /ws (cookies ignore ports, and the narrower Path makes the
// browser send it before the victim's own) and goes to A's victim page.
var hijackPage = template.Must(template.New("hijack").Parse(`<!doctype html>
<title>not wsauth</title>
<body>
<script>{{.Lib}}
(async () => {
  await step("hijack", async () => ({ws: await session({{.TargetWS}}, [], "hi")}));
  await step("csrf", async () => {
    let outcome = "sent";
    try {
      await fetch({{.TargetTicket}}, {method: "POST", mode: "no-cors", credentials: "include",
        headers: {"Content-Type": "text/plain"}, body: "{}"});
    } catch (e) {
      outcome = "failed: " + e;
    }
    return {fetch: [outcome]};
  });
  document.cookie = "token=" + {{.PlantToken}} + "; Path=/ws";
  location.href = {{.Next}};
})();
</script>
`))

// victimPage runs on A after B planted its cookie: the victim's own page,
// signed in as alice, must not end up running as the attacker. Its cookie
// WebSocket carries both token cookies and is refused; a ticket, minted by
// alice's cookie on a path the planted one does not cover, still works.
// Then it goes to C.
var victimPage = template.Must(template.New("victim").Parse(`<!doctype html>
<title>wsauth, after a planted cookie</title>
<body>
<script>{{.Lib}}
(async () => {
  await step("planted-cookie", async () => {
    const me = await (await fetch("/api/me")).json();
    const cookie = await session(wsBase, [], "hi");
    const t = (await postJSON("/api/ws-ticket", {})).ticket;
    const ticket = await session(wsBase + "?ticket=" + encodeURIComponent(t), [], "hi");
    return {me: [me.sub || me.error], cookie, ticket};
  });
  location.href = {{.Next}};
})();
</script>
`))

// closePage runs on C, in close mode: scenario 7.
var closePage = template.Must(template.New("close").Parse(`<!doctype html>
<title>wsauth close mode</title>
<body>
<script>{{.Lib}}
(async () => {
  await step("close-mode", async () => ({
    bad: await session(wsBase + "?token=not-a-token", [], "hi"),
    missing: await session(wsBase, [], "hi"),
    scope: await session(wsBase, ["wsauth.v1", "wsauth.bearer." + {{.ScopeToken}}], "hi"),
  }));
})();
</script>
`))

type pageVars struct {
	Lib          template.JS
	ClientLib    template.JS // browser_client_test.go's pages
	Readme       template.JS
	CloseWS      string
	Next         string
	TargetWS     string
	TargetTicket string
	ScopeToken   string
	PlantToken   string
}

// servePage serves tmpl once ready is closed: the servers' URLs, which the
// pages link, are known only after all of them started.
func servePage(ready <-chan struct{}, tmpl *template.Template, vars func() pageVars) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-ready
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		v := vars()
		v.Lib, v.ClientLib, v.Readme = template.JS(pageLib), template.JS(clientLib), template.JS(readmeExample)
		tmpl.Execute(w, v)
	})
}

// TestBrowser runs the browser scenarios in headless Chromium: sign-in and
// the cookie, each way of connecting, a hijack attempt from another origin,
// a planted cookie, expiry and close mode, on the three servers described
// at the top of the file.
func TestBrowser(t *testing.T) {
	bin := findChrome(t)
	rep := newReports()
	ready := make(chan struct{})

	var a, c *env
	var b *httptest.Server
	var closeURL string
	var hijackCookie atomic.Bool  // the hijacking handshake carried A's cookie
	var plantedCookie atomic.Bool // a handshake to A carried two token cookies
	a = newDemoEnv(t, withHandler(func(srv http.Handler) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("POST /report", rep.handler())
		mux.Handle("GET /test/main", servePage(ready, mainPage, func() pageVars { return pageVars{Next: b.URL + "/hijack"} }))
		mux.Handle("GET /test/victim", servePage(ready, victimPage, func() pageVars { return pageVars{Next: closeURL} }))
		mux.Handle("GET /test/short-token", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-ready
			w.Write([]byte(a.issue("erin", 3*time.Second, "api", "ws")))
		}))
		mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-ready
			if r.URL.Path == "/ws" && r.Header.Get("Origin") == b.URL {
				if ck, err := r.Cookie("token"); err == nil && ck.Value != "" {
					hijackCookie.Store(true)
				}
			}
			if r.URL.Path == "/ws" && len(r.CookiesNamed("token")) > 1 {
				plantedCookie.Store(true)
			}
			srv.ServeHTTP(w, r)
		}))
		return mux
	}))
	c = newEnv(t, withServer(func(cfg *server.Config) { cfg.WSReject = server.RejectClose }), withHandler(func(srv http.Handler) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("POST /report", rep.handler())
		mux.Handle("GET /test/close", servePage(ready, closePage, func() pageVars { return pageVars{ScopeToken: c.issue("bob", time.Hour, "api")} }))
		mux.Handle("/", srv)
		return mux
	}))
	bMux := http.NewServeMux()
	bMux.Handle("POST /report", rep.handler())
	bMux.Handle("GET /hijack", servePage(ready, hijackPage, func() pageVars {
		return pageVars{
			TargetWS:     "ws" + strings.TrimPrefix(a.URL, "http") + "/ws",
			TargetTicket: a.URL + "/api/ws-ticket",
			PlantToken:   a.issue("mallory", time.Hour, "api", "ws"),
			Next:         a.URL + "/test/victim",
		}
	}))
	// C is reached as localhost, a site of its own: cookies ignore ports,
	// so on 127.0.0.1 it would receive A's cookie.
	closeURL = strings.Replace(c.URL, "127.0.0.1", "localhost", 1) + "/test/close"
	b = httptest.NewServer(bMux)
	t.Cleanup(b.Close)
	if u, _ := url.Parse(b.URL); u.Hostname() != "127.0.0.1" || b.URL == a.URL {
		t.Fatalf("B at %s must be another port of A's host %s", b.URL, a.URL)
	}

	close(ready)
	startChrome(t, bin, a.URL+"/test/main")
	deadline := time.Now().Add(60 * time.Second)

	t.Run("2 no cookie", func(t *testing.T) {
		got := rep.wait(t, "no-cookie", deadline)
		wantRefused(t, "without a cookie", got.Lists["ws"])
		waitFor(t, 5*time.Second, "A to log a 401 for /ws", func() bool {
			return a.log.logged("path=/ws status=401", `cause="no credential"`)
		})
	})
	t.Run("demo page", func(t *testing.T) {
		got := rep.wait(t, "demo-page", deadline)
		if before := got.Lists["before"]; len(before) != 1 || !strings.HasPrefix(before[0], "Not signed in") {
			t.Errorf("the demo page before sign-in says %q; want Not signed in…", before)
		}
		if who := got.Lists["who"]; len(who) != 1 || !strings.HasPrefix(who[0], "Signed in as dora (scopes: api ws)") {
			t.Errorf("the demo page after sign-in says %q; want Signed in as dora (scopes: api ws)…", who)
		}
		log := strings.Join(got.Lists["log"], "\n")
		for _, want := range []string{
			"signed in as dora (scopes: api ws) for 3600 s",
			"got a ticket good for 30 s, once",
			"open (subprotocol wsauth.v1)",
			"echo from the server for dora: hi by cookie",
			"echo from the server for dora: hi by ticket",
			"echo from the server for dora: hi by query",
			"echo from the server for dora: hi by subprotocol",
			`closed 1000 "bye"`,
		} {
			if !strings.Contains(log, want) {
				t.Errorf("the demo page's log lacks %q; it reads:\n%s", want, log)
			}
		}
		if n := strings.Count(log, "welcome dora (scopes: api ws)"); n != 4 {
			t.Errorf("the demo page's log has %d welcomes for dora; want 4 (one per way):\n%s", n, log)
		}
	})
	t.Run("1 cookie", func(t *testing.T) {
		got := rep.wait(t, "cookie", deadline)
		wantEcho(t, "by cookie", got.Lists["ws"], "", "alice")
	})
	t.Run("4 ticket", func(t *testing.T) {
		got := rep.wait(t, "ticket", deadline)
		wantEcho(t, "by ticket", got.Lists["first"], "", "alice")
		wantRefused(t, "with a used ticket", got.Lists["replay"])
		waitFor(t, 5*time.Second, "A to log a 401 for the used ticket", func() bool {
			return a.log.logged("path=/ws status=401", "credential=ticket", "ticket already used")
		})
	})
	t.Run("5 query", func(t *testing.T) {
		got := rep.wait(t, "query", deadline)
		wantEcho(t, "by query token", got.Lists["ws"], "", "alice")
	})
	t.Run("subprotocol", func(t *testing.T) {
		got := rep.wait(t, "subprotocol", deadline)
		wantEcho(t, "by subprotocol", got.Lists["ws"], "wsauth.v1", "alice")
	})
	t.Run("6 expiry", func(t *testing.T) {
		got := rep.wait(t, "expiry", deadline)
		want := []string{"open:", "welcome:erin", "close:3000:token expired"}
		if !slices.Equal(got.Lists["ws"], want) {
			t.Errorf("a token expiring while connected: the page saw %q; want %q", got.Lists["ws"], want)
		}
	})
	t.Run("3 hijack", func(t *testing.T) {
		got := rep.wait(t, "hijack", deadline)
		wantRefused(t, "from another origin", got.Lists["ws"])
		if !hijackCookie.Load() {
			t.Error("the cross-origin handshake carried no cookie: the hijack was not really attempted")
		}
		waitFor(t, 5*time.Second, "A to log a 403 for the foreign origin", func() bool {
			return a.log.logged("path=/ws status=403", "origin not allowed")
		})
		got = rep.wait(t, "csrf", deadline)
		if f := got.Lists["fetch"]; len(f) != 1 || f[0] != "sent" {
			t.Errorf("the cross-site ticket request: %q; want it sent (opaque)", f)
		}
		waitFor(t, 5*time.Second, "A to log a 403 for the cross-site ticket request", func() bool {
			return a.log.logged("path=/api/ws-ticket status=403", "origin not allowed")
		})
	})
	t.Run("planted cookie", func(t *testing.T) {
		got := rep.wait(t, "planted-cookie", deadline)
		if me := got.Lists["me"]; len(me) != 1 || me[0] != "alice" {
			t.Errorf("GET /api/me on the victim's page after the plant: %q; want alice", me)
		}
		wantRefused(t, "by cookie after another port planted one", got.Lists["cookie"])
		if !plantedCookie.Load() {
			t.Error("no handshake to A carried two token cookies: the plant was not really attempted")
		}
		waitFor(t, 5*time.Second, "A to log a 400 for the repeated cookie", func() bool {
			return a.log.logged("path=/ws status=400", "token cookie is sent more than once")
		})
		wantEcho(t, "by ticket after the plant", got.Lists["ticket"], "", "alice")
	})
	t.Run("7 close mode", func(t *testing.T) {
		got := rep.wait(t, "close-mode", deadline)
		for name, want := range map[string][]string{
			"bad":     {"open:", "close:3000:invalid, expired or revoked token"},
			"missing": {"open:", "close:3000:missing token"},
			"scope":   {"open:wsauth.v1", "close:3003:insufficient scope: token lacks ws"},
		} {
			if !slices.Equal(got.Lists[name], want) {
				t.Errorf("close mode, %s token: the page saw %q; want %q", name, got.Lists[name], want)
			}
		}
	})
}

// wantEcho checks a session that got in: open with protocol, the welcome
// for sub, the echo, and the page's own close.
func wantEcho(t *testing.T, what string, ev []string, protocol, sub string) {
	t.Helper()
	want := []string{"open:" + protocol, "welcome:" + sub, "echo:" + sub + ":hi", "close:1000:done"}
	if !slices.Equal(ev, want) {
		t.Errorf("connecting %s: the page saw %q; want %q", what, ev, want)
	}
}

// wantRefused checks a refused handshake as a browser shows it: an error,
// then close 1006, and never an open.
func wantRefused(t *testing.T, what string, ev []string) {
	t.Helper()
	if want := []string{"error", "close:1006:"}; !slices.Equal(ev, want) {
		t.Errorf("connecting %s: the page saw %q; want %q", what, ev, want)
	}
}
