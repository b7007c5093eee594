// The wsauth demo page: sign in, open /ws each way a browser can carry a
// credential, and show what the server says. Plain JavaScript, no build.
"use strict";

const $ = (id) => document.getElementById(id);
const demo = document.body.dataset.demo === "true";
const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";

const meanings = {
  1000: "normal closure",
  1001: "the server is shutting down: reconnect",
  1006: "no close frame: the handshake was refused or the network failed; the browser does not say which",
  1008: "the connection went silent",
  1009: "message too big",
  3000: "the token is missing, invalid, expired or revoked: sign in again",
  3003: "the token lacks the scope /ws needs",
};

let ws = null;

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
  const open = state === "open";
  $("send").disabled = !open;
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

async function refreshWho() {
  const resp = await fetch("/api/me", { cache: "no-store" });
  if (resp.ok) {
    const me = await resp.json();
    const exp = me.exp ? `, token expires at ${new Date(me.exp * 1000).toLocaleTimeString()}` : "";
    $("who").textContent = `Signed in as ${me.sub} (scopes: ${me.scope.join(" ") || "none"})${exp}.`;
    $("who").dataset.sub = me.sub;
  } else {
    $("who").textContent = resp.status === 401 ? "Not signed in: no valid token cookie." : `GET /api/me: ${await describe(resp)}`;
    delete $("who").dataset.sub;
  }
}

async function login(event) {
  event.preventDefault();
  const body = { sub: $("sub").value.trim(), scope: $("scope").value.trim(), ttl: Number($("ttl").value) };
  const resp = await fetch("/dev/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!resp.ok) {
    log("error", `sign-in refused: ${await describe(resp)}`);
    return;
  }
  const got = await resp.json();
  $("token").value = got.token;
  log("info", `signed in as ${got.sub} (scopes: ${got.scope.join(" ")}) for ${got.expires_in} s; the cookie is set`);
  await refreshWho();
}

async function logout() {
  await fetch("/dev/logout", { method: "POST", headers: { "X-Requested-With": "fetch" } });
  $("token").value = "";
  log("info", "signed out; the cookie is cleared");
  await refreshWho();
}

// ticketURL asks for a one-time ticket, by cookie, and returns the URL
// that spends it.
async function ticketURL() {
  const resp = await fetch("/api/ws-ticket", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{}",
  });
  if (!resp.ok) {
    throw new Error(`POST /api/ws-ticket: ${await describe(resp)}`);
  }
  const t = await resp.json();
  log("info", `got a ticket good for ${t.expires_in} s, once`);
  return wsBase + "?ticket=" + encodeURIComponent(t.ticket);
}

function needToken() {
  const token = $("token").value.trim();
  if (!token) {
    throw new Error(demo ? "sign in on this page first: the token is kept in this page only" : "paste a token first");
  }
  return token;
}

async function connect(way) {
  if (ws) {
    ws.abandoned = true;
    ws.close(1000, "reconnecting");
  }
  let url = wsBase;
  let protocols = [];
  try {
    if (way === "ticket") {
      url = await ticketURL();
    } else if (way === "query") {
      url = wsBase + "?token=" + encodeURIComponent(needToken());
    } else if (way === "subprotocol") {
      protocols = ["wsauth.v1", "wsauth.bearer." + needToken()];
    }
  } catch (e) {
    log("error", e.message);
    return;
  }
  log("info", `connecting by ${way}…`);
  setState("connecting", `Connecting by ${way}…`);
  const sock = new WebSocket(url, protocols);
  ws = sock;
  let opened = false;
  sock.onopen = () => {
    opened = true;
    const proto = sock.protocol ? ` (subprotocol ${sock.protocol})` : "";
    log("info", `open${proto}`);
    if (ws === sock) setState("open", `Connected by ${way}`);
  };
  sock.onmessage = (e) => {
    let m;
    try {
      m = JSON.parse(e.data);
    } catch {
      log("message", e.data);
      return;
    }
    switch (m.type) {
      case "welcome": {
        const exp = m.exp ? `; token expires at ${new Date(m.exp * 1000).toLocaleTimeString()}` : "";
        log("welcome", `welcome ${m.sub} (scopes: ${(m.scope || []).join(" ")})${exp}`);
        break;
      }
      case "echo":
        log("echo", `echo from the server for ${m.sub}: ${m.data}`);
        break;
      default:
        log("message", e.data);
    }
  };
  sock.onclose = (e) => {
    if (sock.abandoned && !opened) {
      log("info", `gave up the connection by ${way} before it opened`);
      return;
    }
    const reason = e.reason ? ` "${e.reason}"` : "";
    const hint = !opened && e.code === 1006 ? " (the handshake failed)" : "";
    log("close", `closed ${e.code}${reason}: ${meanings[e.code] || "see RFC 6455 §7.4"}${hint}`);
    if (ws === sock) {
      ws = null;
      setState("closed", `Closed ${e.code}`);
    }
  };
}

function send(event) {
  event.preventDefault();
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  ws.send($("msg").value);
  log("sent", `sent: ${$("msg").value}`);
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
}
$("send-form").addEventListener("submit", send);
$("token-form").addEventListener("submit", (e) => e.preventDefault());
$("disconnect").addEventListener("click", () => {
  if (ws) {
    ws.abandoned = true;
    ws.close(1000, "bye");
  }
});
$("clear").addEventListener("click", () => $("log").replaceChildren());
setState("closed", "Not connected");
refreshWho();
