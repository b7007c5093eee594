// The wsauth demo page: sign in, open /ws each way a browser can carry a
// credential through the wsauth.js client, and show what happens. Plain
// JavaScript modules, no build.
import { WSAuthClient } from "/static/wsauth.js";

const $ = (id) => document.getElementById(id);
const demo = document.body.dataset.demo === "true";

const meanings = {
  1000: "normal closure",
  1001: "the server is shutting down",
  1002: "protocol error: a client bug",
  1003: "the server reads text messages only",
  1006: "no close frame: the handshake was refused or the network failed",
  1007: "the message was not UTF-8",
  1009: "message too big",
  3000: "the token is missing, invalid, expired or revoked",
  3003: "the token lacks the scope /ws needs",
};

let conn = null; // the WSAuthClient of the way last chosen
let way = "";
let signedIn = null; // the last sign-in: {sub, scope, ttl}
let expiresAt = 0; // performance.now() when the token in use expires; 0: unknown

// log adds a line to the message log. kind is one of: info, sent, welcome,
// echo, message, error, close.
function log(kind, text) {
  const li = document.createElement("li");
  li.dataset.kind = kind;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  const body = document.createElement("span");
  body.textContent = text;
  li.append(time, body);
  $("log").append(li);
  li.scrollIntoView({ block: "nearest" });
}

function setState(state, text) {
  $("state").dataset.state = state;
  $("state").textContent = text;
  $("send").disabled = state !== "open";
  $("disconnect").disabled = state === "closed";
}

// describe turns a JSON error answer into one line.
async function describe(resp) {
  try {
    const b = await resp.json();
    return `${resp.status} ${b.error}: ${b.error_description || ""}`;
  } catch {
    return `${resp.status} ${resp.statusText}`;
  }
}

function expiresIn(seconds) {
  expiresAt = seconds === undefined ? 0 : performance.now() + seconds * 1000;
  tick();
}

// tick shows the token's remaining life, once a second.
function tick() {
  const el = $("countdown");
  if (!expiresAt) {
    el.dataset.state = "none";
    el.textContent = "";
    return;
  }
  const left = Math.max(0, Math.round((expiresAt - performance.now()) / 1000));
  el.dataset.state = left > 0 ? "valid" : "expired";
  const m = Math.floor(left / 60);
  const s = String(left % 60).padStart(2, "0");
  el.textContent = left > 0 ? `The token expires in ${m}:${s}.` : "The token has expired.";
}

async function refreshWho() {
  const resp = await fetch("/api/me", { cache: "no-store" });
  if (resp.ok) {
    const me = await resp.json();
    const exp = me.exp ? `, token expires at ${new Date(me.exp * 1000).toLocaleTimeString()}` : "";
    $("who").textContent = `Signed in as ${me.sub} (scopes: ${me.scope.join(" ") || "none"})${exp}.`;
    $("who").dataset.sub = me.sub;
    if (!conn && me.exp) expiresIn(me.exp - Date.now() / 1000);
  } else {
    $("who").textContent = resp.status === 401 ? "Not signed in: no valid token cookie." : `GET /api/me: ${await describe(resp)}`;
    delete $("who").dataset.sub;
  }
}

// signIn asks the demo sign-in for a token, which the server also sets as
// the cookie. A real application would ask its token system.
async function signIn(req) {
  const resp = await fetch("/dev/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(req),
  });
  if (!resp.ok) {
    log("error", `sign-in refused: ${await describe(resp)}`);
    return null;
  }
  const got = await resp.json();
  signedIn = req;
  $("token").value = got.token;
  return got;
}

async function login(event) {
  event.preventDefault();
  const got = await signIn({ sub: $("sub").value.trim(), scope: $("scope").value.trim(), ttl: Number($("ttl").value) });
  if (!got) return;
  log("info", `signed in as ${got.sub} (scopes: ${got.scope.join(" ")}) for ${got.expires_in} s; the cookie is set`);
  $("relogin").hidden = true;
  if (!conn || conn.state === "stopped") expiresIn(got.expires_in);
  await refreshWho();
}

// relogin signs in again as before, after the session ended, and reconnects
// the way that was in use.
async function relogin() {
  const got = signedIn && (await signIn(signedIn));
  if (!got) return;
  log("info", `signed in again as ${got.sub} for ${got.expires_in} s`);
  $("relogin").hidden = true;
  await refreshWho();
  if (way) connect(way);
}

async function logout() {
  await fetch("/dev/logout", { method: "POST", headers: { "X-Requested-With": "fetch" } });
  $("token").value = "";
  signedIn = null;
  expiresIn(undefined);
  log("info", "signed out; the cookie is cleared");
  await refreshWho();
}

// renew is the client's renew callback. With "keep alive" ticked, the demo
// signs in again, which renews the cookie; the client then mints a ticket by
// it (cookie and ticket ways), or takes the new token (query and
// subprotocol ways), and moves the connection onto it in-band (before
// expiry) or reconnects with it (after a refusal, say a refresh the server
// throttled). A real application would use its token system's refresh here.
// Without keep alive it renews nothing, and the page says the session ended.
async function renew({ reason }) {
  if (!demo || !$("keepalive").checked || !signedIn) return false;
  const got = await signIn(signedIn);
  if (!got) return false;
  const then = reason === "refresh" ? "moving the connection onto the new token" : "reconnecting with it";
  log("info", `keep alive: signed in again for ${got.expires_in} s; ${then}`);
  return way === "query" || way === "subprotocol" ? got.token : true;
}

function connect(newWay) {
  if (conn) conn.close("switching");
  if ((newWay === "query" || newWay === "subprotocol") && !$("token").value.trim()) {
    log("error", demo ? "sign in on this page first: the token is kept in this page only" : "paste a token first");
    return;
  }
  way = newWay;
  // refreshAt 0.5: the demo's tokens can be 15 seconds short; renewing at
  // half-life leaves the round trips plenty of time.
  const c = new WSAuthClient({ credential: way, token: () => $("token").value.trim(), renew, refreshAt: 0.5 });
  conn = c;
  let countdown = 0;
  const mine = (fn) => (e) => { if (conn === c) fn(e.detail); };
  c.addEventListener("connecting", mine((d) => {
    clearInterval(countdown);
    if (d.ticketExpiresIn) log("info", `got a ticket good for ${d.ticketExpiresIn} s, once`);
    log("info", `connecting by ${way}…`);
    setState("connecting", `Connecting by ${way}…`);
  }));
  c.addEventListener("open", mine((d) => {
    log("info", `open${d.protocol ? ` (subprotocol ${d.protocol})` : ""}`);
    const w = d.welcome;
    const exp = d.expiresIn !== undefined ? `; token expires in ${d.expiresIn} s` : "";
    log("welcome", `welcome ${w.sub} (scopes: ${(w.scope || []).join(" ")})${exp}`);
    expiresIn(d.expiresIn);
    setState("open", `Connected by ${way}`);
  }));
  c.addEventListener("refreshed", mine((d) => {
    log("welcome", `refreshed in-band: the connection now lives on the new token, which expires in ${d.expiresIn} s`);
    expiresIn(d.expiresIn);
  }));
  c.addEventListener("message", mine((m) => {
    if (m?.type === "echo") log("echo", `echo from the server for ${m.sub}: ${m.data}`);
    else if (m?.type === "error") log("error", `the server refused the refresh: ${m.error}`);
    else log("message", typeof m === "string" ? m : JSON.stringify(m));
  }));
  c.addEventListener("closed", mine((d) => {
    const reason = d.reason ? ` "${d.reason}"` : "";
    const why = d.code === 1006 && d.why !== "network" ? ` (the check says: ${d.why})` : "";
    log("close", `closed ${d.code}${reason}: ${meanings[d.code] || d.why}${why}${d.willRetry ? "" : "; not retrying"}`);
    if (!d.willRetry) {
      setState("closed", `Closed ${d.code}${reason}`);
      expiresIn(undefined);
    }
  }));
  c.addEventListener("reconnecting", mine((d) => {
    const until = performance.now() + d.delay;
    const show = () => setState("waiting", `Reconnecting in ${Math.max(0, Math.ceil((until - performance.now()) / 1000))} s…`);
    show();
    log("info", `reconnecting in ${(d.delay / 1000).toFixed(1)} s (${d.why})`);
    clearInterval(countdown);
    countdown = setInterval(show, 250);
  }));
  c.addEventListener("auth-required", mine((d) => {
    const what = d.reason || d.why;
    $("who").textContent = `Your session ended (${what}). Sign in again to reconnect.`;
    delete $("who").dataset.sub;
    log("error", `session ended (${what}): sign in again`);
    if (demo) $("relogin").hidden = !signedIn;
  }));
  c.addEventListener("closed", mine((d) => { if (!d.willRetry) clearInterval(countdown); }));
  c.start();
}

function send(event) {
  event.preventDefault();
  if (conn?.send($("msg").value)) log("sent", `sent: ${$("msg").value}`);
}

for (const b of document.querySelectorAll("[data-way]")) {
  b.addEventListener("click", () => connect(b.dataset.way));
}
if (document.body.dataset.queryToken !== "true") {
  $("connect-query").disabled = true;
}
if (demo) {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("relogin").addEventListener("click", relogin);
}
$("send-form").addEventListener("submit", send);
$("token-form").addEventListener("submit", (e) => e.preventDefault());
$("disconnect").addEventListener("click", () => conn?.close("bye"));
$("clear").addEventListener("click", () => $("log").replaceChildren());
setState("closed", "Not connected");
setInterval(tick, 1000);
refreshWho();
