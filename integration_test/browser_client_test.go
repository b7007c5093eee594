package integration_test

import (
	"context"
	"encoding/json"
	"html/template"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"wsauth/server"
	"wsauth/tokens"
)

// The browser client, server/static/wsauth.js, proven in headless Chromium
// (the helpers are browser_test.go's). Pages load the module from the
// server, as an application would, and report what its events said; the
// servers count what reached them (hits), so that "no reconnect" and "no
// retry" are seen where they happen, not only where the page says so.
//
// Timings are injected: short token lifetimes, refreshAt and backoff
// delays in milliseconds, and, for the schedule itself, a fake clock,
// timers, random source, WebSocket and fetch driven in the page (world).
//
// Servers:
//   - A, demo mode, rechecking every 300 ms: the client page, the demo page;
//   - C, close mode, accepting A's origin: a refusal by close code;
//   - R, demo mode, shut down (1001) and started again on the same address,
//     in front of a token service that outlives it: the restart.

// hits counts the requests that reach a server, by path and the page's tag
// (?t=), with the time of each.
type hits struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func newHits() *hits { return &hits{at: map[string][]time.Time{}} }

// wrap counts requests to the routes the client uses, then serves them.
func (h *hits) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; p {
		case "/ws", "/api/ws-check", "/api/ws-ticket":
			key := p + " " + r.URL.Query().Get("t")
			h.mu.Lock()
			h.at[key] = append(h.at[key], time.Now())
			h.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// count is how many requests to path with tag arrived.
func (h *hits) count(path, tag string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.at[path+" "+tag])
}

// first is when the first request to path with tag arrived.
func (h *hits) first(path, tag string) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if at := h.at[path+" "+tag]; len(at) > 0 {
		return at[0]
	}
	return time.Time{}
}

// clientLib is the script the client pages share, beside pageLib.
const clientLib = `
// record lists a client's events as strings: "open", "refreshed",
// "closed:<code>:<reason>:<why>:<willRetry>", "reconnecting:<delay>",
// "auth-required:<why>", "message:<type>"; "connecting" only with withConnecting.
function record(client, withConnecting) {
  const ev = [];
  const on = (type, fmt) => client.addEventListener(type, (e) => ev.push(fmt(e.detail)));
  if (withConnecting) on("connecting", () => "connecting");
  on("open", () => "open");
  on("refreshed", () => "refreshed");
  on("message", (m) => "message:" + (m && m.type));
  on("closed", (d) => ["closed", d.code, d.reason, d.why, d.willRetry].join(":"));
  on("reconnecting", (d) => "reconnecting:" + d.delay);
  on("auth-required", (d) => "auth-required:" + d.why);
  return ev;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const count = (ev, prefix) => ev.filter((e) => e.startsWith(prefix)).length;

// world is a deterministic stand-in for what the client takes from the
// browser: virtual time and timers, a scripted random source, WebSocket and
// fetch. socket(s) decides what each new socket does; fetch(path, init)
// answers requests (by default the network is down).
function world({random = () => 0.5, socket = (s) => s.refuse(), fetch = async () => { throw new TypeError("network down"); }} = {}) {
  let now = 0, seq = 0;
  const timers = new Map();
  const sockets = [], fetches = [];
  const env = {
    random, now: () => now,
    setTimeout: (fn, ms) => { const id = ++seq; timers.set(id, {at: now + Math.max(0, ms || 0), id, fn}); return id; },
    clearTimeout: (id) => { timers.delete(id); },
    fetch: async (url, init = {}) => { const p = new URL(url).pathname; fetches.push(p + "@" + now); return fetch(p, init); },
    document: Object.assign(new EventTarget(), {visibilityState: "visible"}),
    window: new EventTarget(),
    navigator: {onLine: true},
    location: {href: "http://app.test/"},
  };
  env.WebSocket = class {
    constructor(url, protocols) {
      Object.assign(this, {url, protocols, protocol: "", sent: [], at: now});
      sockets.push(this);
      Promise.resolve().then(() => socket(this));
    }
    refuse() { this.onclose && this.onclose({code: 1006, reason: ""}); }
    accept(welcome = {}) { this.onopen && this.onopen(); this.receive(Object.assign({type: "welcome", sub: "alice", scope: ["ws"]}, welcome)); }
    receive(m) { this.onmessage && this.onmessage({data: JSON.stringify(m)}); }
    drop(code, reason = "") { this.onclose && this.onclose({code, reason}); }
    send(d) { this.sent.push(d); if (this.onsend) this.onsend(JSON.parse(d)); }
    close(code) { this.closedWith = code; }
  };
  // settle lets the client's promises run: a few macrotasks, by
  // MessageChannel, which Chromium does not clamp as it clamps setTimeout.
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => { const ch = new MessageChannel(); ch.port1.onmessage = () => r(); ch.port2.postMessage(0); });
    }
  };
  // advance moves virtual time on by ms, firing due timers in order.
  async function advance(ms) {
    const end = now + ms;
    await settle();
    for (;;) {
      let next = null;
      for (const t of timers.values()) if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.id < next.id))) next = t;
      if (!next) break;
      timers.delete(next.id);
      now = next.at;
      next.fn();
      await settle();
    }
    now = end;
    await settle();
  }
  return {env, sockets, fetches, advance, settle, get now() { return now; }};
}

// mulberry32 is a small seeded PRNG: each fake client its own random source.
function mulberry32(a) {
  return () => {
    a |= 0; a = a + 0x6D2B79F5 | 0;
    let t = Math.imul(a ^ a >>> 15, 1 | a);
    t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t;
    return ((t ^ t >>> 14) >>> 0) / 4294967296;
  };
}

function json(status, body, headers = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), {status, headers: Object.assign({"Content-Type": "application/json"}, headers)});
}

const fast = {baseDelay: 100, maxDelay: 1000, resetAfter: 5000};
`

// readmeExample is the README's example of the client, verbatim: the page
// runs it.
const readmeExample = `const { WSAuthClient } = await import("/static/wsauth.js");
const conn = new WSAuthClient({
  credential: "ticket", // a fresh one-time ticket, minted by the HttpOnly cookie, before each attempt
  // Asked before the token expires, and after the server refused it: renew the
  // cookie (here the demo's sign-in; your token system's refresh in an app).
  renew: async () => (await fetch("/dev/login", { method: "POST",
    headers: { "Content-Type": "application/json" }, body: '{"sub":"alice","ttl":60}' })).ok,
});
conn.addEventListener("open", () => conn.send("hello"));
conn.addEventListener("message", (e) => console.log(e.detail)); // {type: "echo", sub: "alice", data: "hello"}
conn.addEventListener("auth-required", () => console.log("signed out: sign in, then conn.start()"));
conn.start();`

// clientPage runs on A: the deterministic schedule in a fake world, then
// the client against the real server, then the demo page; then it goes to
// R's restart page.
var clientPage = template.Must(template.New("client").Parse(`<!doctype html>
<title>wsauth.js in Chromium</title>
<body>
<script type="module">
import { WSAuthClient } from "/static/wsauth.js";
{{.Lib}}
{{.ClientLib}}

// The backoff schedule: capped exponential, full jitter, every delay used.
async function schedule() {
  const rs = [0, 0.5, 0.999, 0.25, 0.75, 0.1, 0.9, 0.6];
  let i = 0;
  const w = world({random: () => rs[i++ % rs.length]});
  const c = new WSAuthClient(Object.assign({env: w.env}, fast));
  const ev = record(c);
  c.start();
  while (count(ev, "reconnecting") < rs.length) await w.advance(1000);
  c.close();
  return {delays: ev.filter((e) => e.startsWith("reconnecting")).map((e) => e.split(":")[1]).slice(0, rs.length),
          sockets: w.sockets.map((s) => String(s.at)),
          checks: w.fetches.filter((f) => f.startsWith("/api/ws-check"))};
}

// A restart seen by 100 clients at once, each with its own random source.
async function spread() {
  const delays = [];
  for (let seed = 1; seed <= 100; seed++) {
    const w = world({random: mulberry32(seed), socket: (s) => s.accept()});
    const c = new WSAuthClient(Object.assign({env: w.env}, fast));
    const ev = record(c);
    c.start();
    await w.settle();
    w.sockets[0].drop(1001, "server shutting down");
    await w.settle();
    delays.push(ev.find((e) => e.startsWith("reconnecting")).split(":")[1]);
    c.close();
  }
  return {delays};
}

// The backoff resets after a connection stayed up resetAfter, and only then.
async function reset() {
  let n = 0;
  const w = world({random: () => 0.999999, socket: (s) => ++n <= 4 ? s.refuse() : s.accept()});
  const c = new WSAuthClient(Object.assign({env: w.env}, fast));
  const ev = record(c);
  c.start();
  while (count(ev, "open") < 1) await w.advance(1000);
  await w.advance(2000); // up for less than resetAfter
  w.sockets.at(-1).drop(1006);
  while (count(ev, "open") < 2) await w.advance(1000);
  await w.advance(6000); // up for more than resetAfter
  w.sockets.at(-1).drop(1006);
  await w.settle();
  c.close();
  return {delays: ev.filter((e) => e.startsWith("reconnecting")).map((e) => e.split(":")[1])};
}

// Retry-After from ticket minting (429) and from the check (503).
async function retryAfter() {
  let mints = 0;
  const w = world({socket: (s) => s.accept(), fetch: async (path) => {
    if (path === "/api/ws-ticket") return ++mints === 1 ? json(429, {error: "too_many_requests"}, {"Retry-After": "3"}) : json(200, {ticket: "t", expires_in: 30});
  }});
  const c = new WSAuthClient(Object.assign({env: w.env, credential: "ticket"}, fast));
  const ev = record(c);
  c.start();
  await w.advance(10000);
  c.close();
  let refused = false;
  const w2 = world({socket: (s) => refused ? s.accept() : (refused = true, s.refuse()), fetch: async (path) => {
    if (path === "/api/ws-check") return json(503, {error: "temporarily_unavailable"}, {"Retry-After": "5"});
  }});
  const c2 = new WSAuthClient(Object.assign({env: w2.env}, fast));
  const ev2 = record(c2);
  c2.start();
  await w2.advance(10000);
  c2.close();
  return {ticket: ev, ticketFetches: w.fetches, check: ev2, sockets: w2.sockets.map((s) => String(s.at))};
}

// No attempt while the page is hidden or offline; one as soon as it is back.
async function pause() {
  const w = world({socket: (s) => s.accept()});
  const c = new WSAuthClient(Object.assign({env: w.env}, fast));
  const steps = [];
  const note = (what) => steps.push(what + ":" + w.sockets.length + ":" + c.state);
  c.start();
  await w.advance(10);
  note("open");
  w.env.document.visibilityState = "hidden";
  w.sockets.at(-1).drop(1006);
  await w.advance(60000);
  note("hidden");
  w.env.document.visibilityState = "visible";
  w.env.document.dispatchEvent(new Event("visibilitychange"));
  await w.settle();
  note("visible");
  w.env.navigator.onLine = false;
  w.sockets.at(-1).drop(1006);
  await w.advance(60000);
  note("offline");
  w.env.navigator.onLine = true;
  w.env.window.dispatchEvent(new Event("online"));
  await w.settle();
  note("online");
  c.close();
  return {steps};
}

// Which close codes stop the client and which bring it back.
async function codes() {
  const out = [];
  for (const code of [1000, 1002, 1003, 1007, 1008, 1009, 3003, 1001, 1006, 1011, 1012, 1013]) {
    const w = world({socket: (s) => s.accept()});
    const c = new WSAuthClient(Object.assign({env: w.env}, fast));
    const ev = record(c);
    c.start();
    await w.advance(10);
    w.sockets[0].drop(code, "r");
    await w.advance(60000);
    out.push(code + ":" + ev.find((e) => e.startsWith("closed")) + ":" + w.sockets.length);
    c.close();
  }
  return {codes: out};
}

// In-band refresh from expires_in, whatever exp and the browser's clock
// say; re-armed on refreshed; a refused refresh retried refreshRetries
// times after its retry_after; then the expiry close, and auth-required.
async function refreshRetries() {
  let n = 0;
  const renews = [];
  const w = world({socket: (s) => {
    s.onsend = (m) => {
      if (m.type !== "refresh") return;
      s.refreshes = (s.refreshes || []).concat(m.token + "@" + w.now);
      if (w.now < 10000) s.receive({type: "refreshed", exp: 1, expires_in: 20});
      else s.receive({type: "error", error: "too_many_requests", retry_after: 1});
    };
    s.accept({exp: 1, expires_in: 8}); // exp long past by any clock: only expires_in counts
  }});
  const c = new WSAuthClient(Object.assign({env: w.env, credential: "subprotocol", token: "t0",
    renew: async ({reason}) => { renews.push(reason); return reason === "refresh" ? "t" + ++n : false; }}, fast));
  const ev = record(c);
  c.start();
  await w.advance(26000);
  w.sockets[0].drop(3000, "token expired");
  await w.advance(60000);
  return {refreshes: w.sockets[0].refreshes, renews, events: ev, protocols: w.sockets[0].protocols, sockets: [String(w.sockets.length)]};
}

// A credential refused again and again (3000 at the handshake) is renewed
// maxRenewals times, then the client asks no more.
async function renewLoop() {
  let renews = 0;
  const w = world({socket: (s) => { s.onopen && s.onopen(); s.drop(3000, "invalid, expired or revoked token"); }});
  const c = new WSAuthClient(Object.assign({env: w.env, renew: async () => { renews++; return true; }}, fast));
  const ev = record(c);
  c.start();
  await w.advance(60000);
  return {events: ev, counts: [String(w.sockets.length), String(renews)]};
}

// The README's example, as written, against the demo server.
async function readme() {
  await postJSON("/dev/login", {sub: "alice"});
  const logged = [];
  const log = console.log;
  console.log = (...args) => { logged.push(JSON.stringify(args[0])); log(...args); };
  try {
    {{.Readme}}
    await until("the echo", () => logged.length > 0);
    conn.close();
  } finally {
    console.log = log;
  }
  return {logged};
}

// The real server from here on.
const tagged = (t) => ({url: "/ws?t=" + t, ticketURL: "/api/ws-ticket?t=" + t, checkURL: "/api/ws-check?t=" + t});

// One socket across two token lifetimes, refreshed in-band by ticket and by
// token.
async function refreshLive() {
  // 4-second tokens (3 to 4 s left: exp is in whole seconds), renewed at
  // half of what is left: a second or more to spare on a loaded machine,
  // and fewer refreshes than a connection may make at once.
  const login = () => postJSON("/dev/login", {sub: "rita", ttl: 4});
  const newToken = async () => (await fetch("/test/token?sub=sam&ttl=4")).text();
  const byTicket = new WSAuthClient(Object.assign(tagged("refresh-ticket"), {credential: "ticket", refreshAt: 0.5,
    renew: async () => { await login(); return true; }}));
  const byToken = new WSAuthClient(Object.assign(tagged("refresh-token"), {credential: "subprotocol", refreshAt: 0.5,
    token: newToken, renew: newToken}));
  const evTicket = record(byTicket, true), evToken = record(byToken, true);
  await login();
  byTicket.start();
  await until("the ticket client to open", () => count(evTicket, "open") === 1);
  byToken.start();
  await until("the token client to open", () => count(evToken, "open") === 1);
  const start = performance.now();
  await until("two token lifetimes and three refreshes each", () =>
    performance.now() - start > 8500 && count(evTicket, "refreshed") >= 3 && count(evToken, "refreshed") >= 3, 25000);
  byTicket.close("done");
  byToken.close("done");
  return {ticket: evTicket, token: evToken, lived: [String(Math.round(performance.now() - start))]};
}

// Revocation: 3000, renew gives nothing, auth-required; a new sign-in and
// start() connect again.
async function revocation() {
  const {token} = await postJSON("/dev/login", {sub: "vera"});
  const renews = [];
  const c = new WSAuthClient(Object.assign(tagged("revoke"), fast, {renew: async ({reason}) => { renews.push(reason); return false; }}));
  const ev = record(c);
  c.start();
  await until("open", () => count(ev, "open") === 1);
  await postJSON("/test/revoke", {token});
  await until("auth-required", () => count(ev, "auth-required") === 1);
  await sleep(500); // five times baseDelay: a retry would have come
  await postJSON("/dev/login", {sub: "vera"});
  c.start();
  await until("open again", () => count(ev, "open") === 2);
  c.close("done");
  return {events: ev, renews};
}

// 3003 on an open connection: stop, and no retry.
async function scopeLost() {
  const token = await (await fetch("/test/token?sub=sid&scope=api+ws")).text();
  const c = new WSAuthClient(Object.assign(tagged("3003"), fast, {credential: "subprotocol", token}));
  const ev = record(c);
  c.start();
  await until("open", () => count(ev, "open") === 1);
  await postJSON("/test/scope", {token, scope: "api"});
  await until("closed", () => count(ev, "closed") === 1);
  await sleep(500); // five times baseDelay: a retry would have come
  return {events: ev};
}

// A refused handshake, explained: by GET /api/ws-check in HTTP mode, by the
// close code in close mode.
async function refusals() {
  await fetch("/dev/logout", {method: "POST", headers: {"X-Requested-With": "fetch"}});
  const run = async (tag, opts) => {
    const renews = [];
    const c = new WSAuthClient(Object.assign(tagged(tag), fast, {renew: async ({reason}) => { renews.push(reason); return false; }}, opts));
    const ev = record(c);
    c.start();
    await until(tag + " to stop", () => c.state === "stopped");
    await sleep(500); // five times baseDelay: a retry would have come
    return ev.concat(renews.map((r) => "renew:" + r));
  };
  const noScope = await (await fetch("/test/token?sub=bob&scope=api")).text();
  const [nocookie, noscope, closemode] = await Promise.all([
    run("nocookie", {}),
    run("noscope", {credential: "subprotocol", token: noScope}),
    run("closemode", {url: {{.CloseWS}} + "?t=closemode", checkURL: null, credential: "subprotocol", token: "not-a-token"}),
  ]);
  return {nocookie, noscope, closemode};
}

// 1009 and 1003, sent by the server for what this page sent: stop.
async function badMessages() {
  await postJSON("/dev/login", {sub: "mia"});
  const run = async (tag, data) => {
    const c = new WSAuthClient(Object.assign(tagged(tag), fast));
    const ev = record(c);
    c.start();
    await until(tag + " open", () => count(ev, "open") === 1);
    c.send(data);
    await until(tag + " closed", () => count(ev, "closed") === 1);
    await sleep(500); // five times baseDelay: a retry would have come
    return ev;
  };
  const [big, binary] = await Promise.all([run("1009", "x".repeat(70000)), run("1003", new Uint8Array([1, 2, 3]))]);
  return {big, binary};
}

// The demo page, rebuilt on the client: keep alive refreshes in-band across
// the token's expiry, the countdown shows its life; without keep alive the
// expiry ends the session, and "Sign in again" reconnects.
async function demoPage() {
  const {$, texts} = await openDemoPage();
  // waitFor is until, failing with the page's log, which says what went wrong.
  const waitFor = async (what, cond, ms) => {
    try {
      await until(what, cond, ms);
    } catch (e) {
      throw new Error(e.message + "; the demo page's log:\n" + texts().join("\n"));
    }
  };
  await waitFor("the page to check the sign-in", () => $("who").textContent !== "Checking…");
  $("ttl").add(new Option("4 seconds", "4"));
  $("ttl").value = "4";
  $("sub").value = "kim";
  $("keepalive").checked = true;
  $("login").click();
  await waitFor("sign-in as kim", () => $("who").dataset.sub === "kim");
  $("connect-ticket").click();
  await waitFor("open", () => $("state").dataset.state === "open");
  const countdown = [];
  const opened = performance.now();
  await waitFor("two refreshes past the first token's life", () => {
    const c = $("countdown").textContent;
    if (countdown.at(-1) !== c) countdown.push(c);
    return performance.now() - opened > 4500 && texts().filter((t) => t.startsWith("refreshed in-band")).length >= 2;
  }, 15000);
  const stateWhileAlive = $("state").textContent;
  $("keepalive").checked = false;
  await waitFor("the session to end", () => $("who").textContent.startsWith("Your session ended") && !$("relogin").hidden, 10000);
  const ended = {who: $("who").textContent, state: $("state").textContent, countdown: $("countdown").textContent};
  const welcomes = texts("welcome").filter((t) => t.startsWith("welcome kim")).length;
  $("relogin").click();
  await waitFor("reconnected", () => texts("welcome").filter((t) => t.startsWith("welcome kim")).length > welcomes && $("state").dataset.state === "open");
  $("disconnect").click();
  return {countdown, alive: [stateWhileAlive], ended: [ended.who, ended.state, ended.countdown], log: texts()};
}

(async () => {
  await step("schedule", schedule);
  await step("spread", spread);
  await step("reset", reset);
  await step("retry-after", retryAfter);
  await step("pause", pause);
  await step("codes", codes);
  await step("refresh-retries", refreshRetries);
  await step("renew-loop", renewLoop);
  await step("readme", readme);
  await step("refresh-live", refreshLive);
  await step("revocation", revocation);
  await step("scope-lost", scopeLost);
  await step("refusals", refusals);
  await step("bad-messages", badMessages);
  await step("demo-page", demoPage);
  location.href = {{.Next}};
})();
</script>
`))

// restartPage runs on R: a client with short delays and the demo page both
// reconnect after the server restarts.
var restartPage = template.Must(template.New("restart").Parse(`<!doctype html>
<title>wsauth.js across a restart</title>
<body>
<script type="module">
import { WSAuthClient } from "/static/wsauth.js";
{{.Lib}}
{{.ClientLib}}

(async () => {
  await postJSON("/dev/login", {sub: "rex"});
  const c = new WSAuthClient({url: "/ws?t=restart", ticketURL: "/api/ws-ticket?t=restart", checkURL: "/api/ws-check?t=restart",
    credential: "ticket", baseDelay: 200, maxDelay: 1000, resetAfter: 60000});
  const ev = record(c);
  c.start();
  const {$} = await openDemoPage();
  await until("the demo page to check the sign-in", () => $("who").textContent !== "Checking…");
  $("connect-cookie").click();
  const states = [];
  const watch = setInterval(() => { const s = $("state").textContent; if (states.at(-1) !== s) states.push(s); }, 20);
  await step("restart-up", async () => {
    await until("both open", () => count(ev, "open") === 1 && $("state").dataset.state === "open");
    return {};
  });
  await step("restart", async () => {
    await until("both open again", () => count(ev, "open") === 2 && states.length > 2 && $("state").dataset.state === "open", 20000);
    clearInterval(watch);
    if (states.at(-1) !== $("state").textContent) states.push($("state").textContent);
    c.close("done");
    return {events: ev, demo: states};
  });
})();
</script>
`))

// testTokenRoutes are A's endpoints that drive the token service for the
// page: issue a token, revoke one, change one's scopes.
func testTokenRoutes(mux *http.ServeMux, e func() *env) {
	mux.Handle("GET /test/token", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ttl, err := strconv.Atoi(r.URL.Query().Get("ttl"))
		if err != nil {
			ttl = 3600
		}
		scope := r.URL.Query().Get("scope")
		if scope == "" {
			scope = "api ws"
		}
		w.Write([]byte(e().issue(r.URL.Query().Get("sub"), time.Duration(ttl)*time.Second, strings.Fields(scope)...)))
	}))
	mux.Handle("POST /test/revoke", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Token string }
		json.NewDecoder(r.Body).Decode(&req)
		e().svc.Revoke(req.Token)
		w.Write([]byte("{}"))
	}))
	mux.Handle("POST /test/scope", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Token, Scope string }
		json.NewDecoder(r.Body).Decode(&req)
		e().svc.SetScopes(req.Token, strings.Fields(req.Scope))
		w.Write([]byte("{}"))
	}))
}

// restartServer stops e's server as cmd/wsauth does on SIGTERM (the
// listener and idle connections first, then every WebSocket with 1001),
// waits outage, and serves a new instance on the same address, in front of
// the same token service, wrapped by wrap. It returns when the new instance
// listens.
func restartServer(t *testing.T, e *env, wrap func(http.Handler) http.Handler, outage time.Duration) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.ts.Close()
	e.srv.Shutdown(ctx)
	<-time.After(outage) // the outage itself, not a wait for anything

	tr := &http.Transport{}
	in := &tokens.Introspector{URL: e.svcURL + "/introspect", ClientID: "wsauth", ClientSecret: "test-secret",
		HTTPClient: &http.Client{Transport: tr}}
	srv := server.New(server.Config{
		Validator:    tokens.NewCache(in, tokens.CacheConfig{}),
		Logger:       slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		DemoIssuer:   &demoIssuer{svc: e.svc},
		FailureBurst: -1,
	})
	ln, err := net.Listen("tcp", e.ts.Listener.Addr().String())
	if err != nil {
		t.Fatalf("listening again on %s: %v", e.ts.Listener.Addr(), err)
	}
	ts := httptest.NewUnstartedServer(wrap(srv))
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		ts.Close()
		tr.CloseIdleConnections()
	})
	return time.Now()
}

// TestBrowserClient proves each behaviour of wsauth.js in headless Chromium.
func TestBrowserClient(t *testing.T) {
	checkNoLeaks(t)
	bin := findChrome(t)
	rep := newReports()
	ready := make(chan struct{})
	aHits, cHits, r1Hits, r2Hits := newHits(), newHits(), newHits(), newHits()

	var a, c, r *env
	a = newDemoEnv(t, withServer(func(cfg *server.Config) { cfg.Recheck = 300 * time.Millisecond }), withHandler(func(srv http.Handler) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("POST /report", rep.handler())
		mux.Handle("GET /test/client", servePage(ready, clientPage, func() pageVars {
			return pageVars{Next: r.URL + "/test/restart", CloseWS: "ws" + strings.TrimPrefix(c.URL, "http") + "/ws"}
		}))
		testTokenRoutes(mux, func() *env { <-ready; return a })
		mux.Handle("/", aHits.wrap(srv))
		return mux
	}))
	c = newEnv(t, withServer(func(cfg *server.Config) {
		cfg.WSReject = server.RejectClose
		cfg.AllowedOrigins = []string{a.URL}
	}), withHandler(cHits.wrap))
	restartMux := func(h *hits) func(http.Handler) http.Handler {
		return func(srv http.Handler) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("POST /report", rep.handler())
			mux.Handle("GET /test/restart", servePage(ready, restartPage, func() pageVars { return pageVars{} }))
			mux.Handle("/", h.wrap(srv))
			return mux
		}
	}
	r = newDemoEnv(t, withHandler(restartMux(r1Hits)))
	close(ready)
	startChrome(t, bin, a.URL+"/test/client")
	deadline := time.Now().Add(90 * time.Second)

	t.Run("backoff schedule: capped exponential, full jitter, each delay used", func(t *testing.T) {
		got := rep.wait(t, "schedule", deadline)
		rs := []float64{0, 0.5, 0.999, 0.25, 0.75, 0.1, 0.9, 0.6}
		var want []string
		for i, r := range rs {
			want = append(want, strconv.Itoa(int(math.Floor(r*math.Min(1000, 100*math.Pow(2, float64(i)))))))
		}
		if !slices.Equal(got.Lists["delays"], want) {
			t.Errorf("reconnect delays with random %v, base 100 ms, max 1000 ms: %q; want %q (random × min(max, base × 2^n))", rs, got.Lists["delays"], want)
		}
		at := got.Lists["sockets"]
		for i := 1; i < len(at) && i <= len(want); i++ {
			prev, _ := strconv.Atoi(at[i-1])
			cur, _ := strconv.Atoi(at[i])
			if d, _ := strconv.Atoi(want[i-1]); cur-prev != d {
				t.Errorf("socket %d opened %d ms after socket %d; want the announced delay %d ms", i+1, cur-prev, i, d)
			}
		}
		if checks := got.Lists["checks"]; len(checks) != len(at) {
			t.Errorf("GET /api/ws-check asked %d times for %d refused handshakes while the server was unreachable; want once per refusal", len(checks), len(at))
		}
	})
	t.Run("backoff spread: 100 clients told to reconnect at once spread over the window", func(t *testing.T) {
		got := rep.wait(t, "spread", deadline)
		var buckets [10]int
		seen := map[string]bool{}
		for _, s := range got.Lists["delays"] {
			d, err := strconv.Atoi(s)
			if err != nil || d < 0 || d >= 100 {
				t.Fatalf("first reconnect delay after 1001 = %q; want 0 to 99 ms (base 100 ms)", s)
			}
			buckets[d/10]++
			seen[s] = true
		}
		for i, n := range buckets {
			if n == 0 || n > 25 {
				t.Errorf("%d of 100 clients reconnect %d–%d ms after the 1001; want 1 to 25 in each tenth of the window: %v", n, i*10, i*10+9, buckets)
			}
		}
		if len(seen) < 50 {
			t.Errorf("100 clients chose %d distinct delays; want at least 50: full jitter", len(seen))
		}
	})
	t.Run("backoff resets after a connection stayed up resetAfter, not before", func(t *testing.T) {
		got := rep.wait(t, "reset", deadline)
		// random ≈ 1: each delay is its cap. Four refusals, a connection up
		// 2 s (< resetAfter 5 s): the cap keeps growing; up 6 s: back to base.
		if want := []string{"99", "199", "399", "799", "999", "99"}; !slices.Equal(got.Lists["delays"], want) {
			t.Errorf("reconnect delays: %q; want %q", got.Lists["delays"], want)
		}
	})
	t.Run("Retry-After from ticket minting (429) and from the check (503)", func(t *testing.T) {
		got := rep.wait(t, "retry-after", deadline)
		if want := []string{"closed:1006::too_many_requests:true", "reconnecting:3050", "open", "closed:1000:closed by the client:closed:false"}; !slices.Equal(got.Lists["ticket"], want) {
			t.Errorf("ticket minting answered 429 Retry-After: 3: events %q; want %q", got.Lists["ticket"], want)
		}
		if f := got.Lists["ticketFetches"]; len(f) != 2 || f[1] != "/api/ws-ticket@3050" {
			t.Errorf("ticket requests: %q; want a second one at 3050 ms, Retry-After plus jitter", f)
		}
		if want := []string{"closed:1006::temporarily_unavailable:true", "reconnecting:5050", "open", "closed:1000:closed by the client:closed:false"}; !slices.Equal(got.Lists["check"], want) {
			t.Errorf("the check answered 503 Retry-After: 5: events %q; want %q", got.Lists["check"], want)
		}
	})
	t.Run("no attempt while hidden or offline", func(t *testing.T) {
		got := rep.wait(t, "pause", deadline)
		want := []string{"open:1:open", "hidden:1:paused", "visible:2:open", "offline:2:paused", "online:3:open"}
		if !slices.Equal(got.Lists["steps"], want) {
			t.Errorf("step:sockets:state = %q; want %q", got.Lists["steps"], want)
		}
	})
	t.Run("close codes: which stop and which retry", func(t *testing.T) {
		got := rep.wait(t, "codes", deadline)
		want := []string{
			"1000:closed:1000:r:normal:false:1",
			"1002:closed:1002:r:protocol_error:false:1",
			"1003:closed:1003:r:unsupported_data:false:1",
			"1007:closed:1007:r:invalid_payload:false:1",
			"1008:closed:1008:r:policy_violation:false:1",
			"1009:closed:1009:r:message_too_big:false:1",
			"3003:closed:3003:r:insufficient_scope:false:1",
			"1001:closed:1001:r:going_away:true:2",
			"1006:closed:1006:r:network:true:2",
			"1011:closed:1011:r:server_error:true:2",
			"1012:closed:1012:r:service_restart:true:2",
			"1013:closed:1013:r:try_again_later:true:2",
		}
		if !slices.Equal(got.Lists["codes"], want) {
			t.Errorf("code:first closed event:sockets after a minute =\n%q\nwant\n%q", got.Lists["codes"], want)
		}
	})
	t.Run("in-band refresh: from expires_in, re-armed, retried after retry_after, then the expiry", func(t *testing.T) {
		got := rep.wait(t, "refresh-retries", deadline)
		// expires_in 8, refreshAt 0.75: at 6 s, refreshed (20 s more): at
		// 21 s; past 10 s the server refuses with retry_after 1: three
		// retries at 22, 23, 24 s; then nothing until the 3000 at 26 s.
		if want := []string{"t1@6000", "t2@21000", "t3@22000", "t4@23000", "t5@24000"}; !slices.Equal(got.Lists["refreshes"], want) {
			t.Errorf("refresh messages (token@ms): %q; want %q", got.Lists["refreshes"], want)
		}
		if want := []string{"refresh", "refresh", "refresh", "refresh", "refresh", "rejected"}; !slices.Equal(got.Lists["renews"], want) {
			t.Errorf("renew reasons: %q; want %q", got.Lists["renews"], want)
		}
		want := []string{"open", "refreshed", "message:error", "message:error", "message:error", "message:error",
			"auth-required:unauthorized", "closed:3000:token expired:unauthorized:false"}
		if !slices.Equal(got.Lists["events"], want) {
			t.Errorf("events: %q; want %q", got.Lists["events"], want)
		}
		if p := got.Lists["protocols"]; !slices.Equal(p, []string{"wsauth.v1", "wsauth.bearer.t0"}) || got.Lists["sockets"][0] != "1" {
			t.Errorf("subprotocols %q, sockets %q; want [wsauth.v1 wsauth.bearer.t0] and one socket", p, got.Lists["sockets"])
		}
	})
	t.Run("a credential refused at every handshake is renewed maxRenewals times, then auth-required", func(t *testing.T) {
		got := rep.wait(t, "renew-loop", deadline)
		if c := got.Lists["counts"]; !slices.Equal(c, []string{"4", "3"}) {
			t.Errorf("sockets, renewals = %q; want 4, 3", c)
		}
		if ev := got.Lists["events"]; len(ev) < 2 || ev[len(ev)-2] != "auth-required:unauthorized" || !strings.HasSuffix(ev[len(ev)-1], ":false") {
			t.Errorf("events %q; want auth-required, then closed without retry", ev)
		}
	})

	t.Run("the README's example runs as written", func(t *testing.T) {
		readme, err := os.ReadFile("../README.md")
		if err != nil || !strings.Contains(string(readme), "```js\n"+readmeExample+"\n```") {
			t.Errorf("README.md (%v) does not quote readmeExample, the example this test runs: update one from the other", err)
		}
		got := rep.wait(t, "readme", deadline)
		if n := aHits.count("/ws", ""); n != 1 {
			t.Errorf("the README's example opened %d WebSockets; want 1", n)
		}
		if want := []string{`{"type":"echo","sub":"alice","data":"hello"}`}; !slices.Equal(got.Lists["logged"], want) {
			t.Errorf("the README's example logged %q; want %q", got.Lists["logged"], want)
		}
	})
	t.Run("in-band refresh keeps one socket open across two token lifetimes", func(t *testing.T) {
		got := rep.wait(t, "refresh-live", deadline)
		for _, tc := range []struct{ name, tag, list string }{{"by ticket", "refresh-ticket", "ticket"}, {"by token", "refresh-token", "token"}} {
			ev := got.Lists[tc.list]
			refreshed := slices.Index(ev, "refreshed")
			n := 0
			for _, e := range ev {
				if e == "refreshed" {
					n++
				}
			}
			if want := []string{"connecting", "open"}; refreshed != 2 || !slices.Equal(ev[:2], want) || n < 3 ||
				ev[len(ev)-1] != "closed:1000:done:closed:false" || len(ev) != 3+n {
				t.Errorf("refresh %s: events %q; want connecting, open, refreshed at least 3 times, then only the page's close", tc.name, ev)
			}
			if h := aHits.count("/ws", tc.tag); h != 1 {
				t.Errorf("refresh %s: %d handshakes reached the server; want 1: no reconnect", tc.name, h)
			}
			if tc.list == "ticket" {
				if m := aHits.count("/api/ws-ticket", tc.tag); m != 1+n {
					t.Errorf("refresh by ticket: %d tickets minted; want %d, one to connect and one per refresh", m, 1+n)
				}
			}
		}
		if lived, _ := strconv.Atoi(got.Lists["lived"][0]); lived < 8000 {
			t.Errorf("the connections lived %d ms; want more than two token lifetimes (4 s each)", lived)
		}
	})
	t.Run("revocation: 3000, auth-required, then a new sign-in connects", func(t *testing.T) {
		got := rep.wait(t, "revocation", deadline)
		want := []string{"open", "auth-required:unauthorized", "closed:3000:token revoked:unauthorized:false", "open", "closed:1000:done:closed:false"}
		if !slices.Equal(got.Lists["events"], want) {
			t.Errorf("events %q; want %q", got.Lists["events"], want)
		}
		if !slices.Equal(got.Lists["renews"], []string{"rejected"}) {
			t.Errorf("renew asked %q; want once, after the revocation", got.Lists["renews"])
		}
		if h, ch := aHits.count("/ws", "revoke"), aHits.count("/api/ws-check", "revoke"); h != 2 || ch != 0 {
			t.Errorf("%d handshakes and %d checks reached the server; want 2 (before the revocation and after the sign-in) and 0", h, ch)
		}
	})
	t.Run("3003 stops without retrying", func(t *testing.T) {
		got := rep.wait(t, "scope-lost", deadline)
		if want := []string{"open", "closed:3003:insufficient scope:insufficient_scope:false"}; !slices.Equal(got.Lists["events"], want) {
			t.Errorf("events %q; want %q", got.Lists["events"], want)
		}
		if h := aHits.count("/ws", "3003"); h != 1 {
			t.Errorf("%d handshakes reached the server; want 1: no retry after 3003", h)
		}
	})
	t.Run("a refused handshake is explained by the check, or by the close code in close mode", func(t *testing.T) {
		got := rep.wait(t, "refusals", deadline)
		for _, tc := range []struct {
			name, tag string
			hits      *hits
			want      []string
			checks    int
		}{
			{"no cookie (check: 401)", "nocookie", aHits,
				[]string{"auth-required:unauthorized", "closed:1006::unauthorized:false", "renew:rejected"}, 1},
			{"no ws scope (check: 403)", "noscope", aHits,
				[]string{"closed:1006::insufficient_scope:false"}, 1},
			{"close mode (3000)", "closemode", cHits,
				[]string{"auth-required:unauthorized", "closed:3000:invalid, expired or revoked token:unauthorized:false", "renew:rejected"}, 0},
		} {
			if ev := got.Lists[tc.tag]; !slices.Equal(ev, tc.want) {
				t.Errorf("%s: events %q; want %q", tc.name, ev, tc.want)
			}
			if h, ch := tc.hits.count("/ws", tc.tag), tc.hits.count("/api/ws-check", tc.tag); h != 1 || ch != tc.checks {
				t.Errorf("%s: %d handshakes and %d checks reached the server; want 1 and %d", tc.name, h, ch, tc.checks)
			}
		}
	})
	t.Run("1009 and 1003 stop without retrying", func(t *testing.T) {
		got := rep.wait(t, "bad-messages", deadline)
		for _, tc := range []struct{ list, tag, want string }{
			{"big", "1009", "closed:1009:message larger than the server accepts:message_too_big:false"},
			{"binary", "1003", "closed:1003:this server reads text messages only:unsupported_data:false"},
		} {
			if ev := got.Lists[tc.list]; !slices.Equal(ev, []string{"open", tc.want}) {
				t.Errorf("%s: events %q; want [open %s]", tc.tag, ev, tc.want)
			}
			if h := aHits.count("/ws", tc.tag); h != 1 {
				t.Errorf("%s: %d handshakes reached the server; want 1", tc.tag, h)
			}
		}
	})
	t.Run("demo page: keep alive outlives the token, countdown, session ended, sign in again", func(t *testing.T) {
		got := rep.wait(t, "demo-page", deadline)
		log := strings.Join(got.Lists["log"], "\n")
		if n := strings.Count(log, "refreshed in-band"); n < 2 {
			t.Errorf("the demo page refreshed %d times with keep alive; want at least 2:\n%s", n, log)
		}
		countdown := regexp.MustCompile(`^The token expires in 0:0[0-4]\.$`)
		if c := got.Lists["countdown"]; len(c) < 2 || !slices.ContainsFunc(c, countdown.MatchString) ||
			slices.ContainsFunc(c, func(s string) bool { return !countdown.MatchString(s) }) {
			t.Errorf("with keep alive, the countdown read %q; want it to move, and always The token expires in 0:0N., for a 4-second token", c)
		}
		if a := got.Lists["alive"]; len(a) != 1 || a[0] != "Connected by ticket" {
			t.Errorf("with keep alive, past the first token's life, the state reads %q; want Connected by ticket", a)
		}
		if e := got.Lists["ended"]; len(e) != 3 || !strings.HasPrefix(e[0], "Your session ended (token expired). Sign in again") ||
			!strings.HasPrefix(e[1], "Closed 3000") {
			t.Errorf("after expiry without keep alive, the page reads %q; want the session ended, sign in again, closed 3000", e)
		}
		if !strings.Contains(log, "signed in again as kim") || strings.Count(log, "welcome kim (scopes: api ws)") != 2 {
			t.Errorf("the demo page's log lacks the second sign-in and its welcome:\n%s", log)
		}
		if h := aHits.count("/ws", "") - 1; h != 2 { // the README's example opened one before
			t.Errorf("the demo page opened %d WebSockets; want 2: one kept alive, one after signing in again", h)
		}
	})

	t.Run("a restart (1001): reconnects within the backoff bounds", func(t *testing.T) {
		rep.wait(t, "restart-up", deadline)
		const outage = time.Second
		started := restartServer(t, r, restartMux(r2Hits), outage)
		got := rep.wait(t, "restart", deadline)

		ev := got.Lists["events"]
		if len(ev) < 4 || ev[0] != "open" || ev[1] != "closed:1001:server shutting down:going_away:true" || ev[len(ev)-2] != "open" {
			t.Fatalf("events %q; want open, closed 1001 with retry, attempts, open, closed", ev)
		}
		attempt := 0
		for _, e := range ev[2 : len(ev)-2] {
			if d, ok := strings.CutPrefix(e, "reconnecting:"); ok {
				attempt++
				delay, _ := strconv.Atoi(d)
				if cap := min(1000, 200<<(attempt-1)); delay < 0 || delay >= cap {
					t.Errorf("reconnect %d: delay %d ms; want 0 to %d ms (base 200, max 1000)", attempt, delay, cap-1)
				}
			} else if e != "closed:1006::network:true" {
				t.Errorf("during the outage: event %q; want only reconnecting and closed 1006 network", e)
			}
		}
		if attempt == 0 {
			t.Error("no reconnect was announced")
		}
		if n := r1Hits.count("/ws", "restart"); n != 1 {
			t.Errorf("%d handshakes reached the server before the restart; want 1", n)
		}
		if n := r2Hits.count("/ws", "restart"); n != 1 {
			t.Errorf("%d handshakes reached the restarted server; want 1", n)
		}
		if first := r2Hits.first("/ws", "restart"); first.IsZero() || first.Sub(started) > time.Second+slack {
			t.Errorf("the first handshake reached the restarted server %v after it started; want within the largest delay (1 s) and %v", first.Sub(started), slack)
		}
		reconnecting := regexp.MustCompile(`^Reconnecting in \d+ s…$`)
		if demo := got.Lists["demo"]; !slices.ContainsFunc(demo, reconnecting.MatchString) || demo[len(demo)-1] != "Connected by cookie" {
			t.Errorf("the demo page's state went %q; want Reconnecting in N s…, then Connected by cookie", demo)
		}
		if n := r2Hits.count("/ws", ""); n != 1 {
			t.Errorf("the demo page opened %d WebSockets on the restarted server; want 1", n)
		}
	})
}
