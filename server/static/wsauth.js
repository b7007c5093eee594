/**
 * wsauth.js: the browser half of wsauth. It opens the server's /ws with the
 * cookie, a one-time ticket or a token in the subprotocol, keeps the
 * connection authorized by moving it onto a renewed token before the old one
 * expires, and acts on every answer the server gives:
 *
 * - 1001, 1006 and a lost network: reconnect, after a capped exponential
 *   backoff with full jitter, so that a restart does not bring every client
 *   back at the same instant; never while the page is hidden or offline;
 * - 3000, or 401: ask the application for a new credential, then reconnect;
 *   without one, stop with an `auth-required` event;
 * - 3003, 1002, 1003, 1007, 1009, or 400/403: stop and say why, since
 *   retrying cannot help;
 * - 429 and 503: retry, not before their Retry-After.
 *
 * A browser shows a refused handshake as 1006 without its status, so after
 * one the client asks GET /api/ws-check, which answers what /ws would have.
 *
 * One plain ES module, no dependencies, no build step. The API and the
 * protocol are in docs/CLIENT.md.
 *
 * @module wsauth
 */

const SUBPROTOCOL = "wsauth.v1";
const BEARER = "wsauth.bearer.";

/** Close codes after which a new connection can succeed (RFC 6455 §7.4.1). */
const TRANSIENT = new Set([1001, 1005, 1006, 1011, 1012, 1013, 1014]);

/** The `why` of a close code; others are "close_<code>". */
const WHY = {
  1000: "normal", 1001: "going_away", 1002: "protocol_error", 1003: "unsupported_data",
  1005: "no_status", 1006: "network", 1007: "invalid_payload", 1008: "policy_violation",
  1009: "message_too_big", 1011: "server_error", 1012: "service_restart", 1013: "try_again_later",
  3000: "unauthorized", 3003: "insufficient_scope",
};

/**
 * @typedef {object} Options
 * @property {string} [url] the WebSocket URL; default `/ws` on the page's host.
 * @property {"cookie"|"ticket"|"subprotocol"|"query"} [credential] how the
 *   handshake carries the credential (default "cookie"): the cookie alone; a
 *   ticket minted by the cookie before each attempt (`?ticket=`); the token
 *   as a subprotocol; or `?token=`, which leaves the token in access logs.
 * @property {string|(() => string|Promise<string>)} [token] the token, for
 *   "subprotocol" and "query".
 * @property {(info: {reason: "refresh"|"rejected", why?: string}) => any} [renew]
 *   asked for a new credential: before the token expires ("refresh") and
 *   after the server refused it ("rejected": 3000 or 401). Resolve to a
 *   token string, to `true` once the cookie (or what `token` returns) is
 *   renewed, or to a falsy value when there is none.
 * @property {number} [refreshAt] the fraction of the token's remaining life
 *   after which it is renewed in-band (default 0.75); 0 turns refresh off.
 * @property {number} [refreshRetries] retries of a refused refresh (default 3).
 * @property {number} [refreshTimeout] ms to wait for the answer to a refresh (default 10000).
 * @property {number} [baseDelay] backoff: the cap of the first delay, in ms (default 500).
 * @property {number} [maxDelay] backoff: the largest cap, in ms (default 30000).
 * @property {number} [resetAfter] ms a connection must stay open for the
 *   backoff to start again from baseDelay (default 30000).
 * @property {number} [maxRenewals] credentials renewed in a row without a
 *   connection opening before the client gives up (default 3).
 * @property {string} [ticketURL] default `/api/ws-ticket` on the server's host.
 * @property {string|null} [checkURL] default `/api/ws-check`; null: never ask.
 * @property {Partial<Env>} [env] replaces the browser's clock, timers, random
 *   source, WebSocket and fetch: for tests.
 */

/**
 * @typedef {object} Env
 * @property {() => number} random in [0, 1), for the jitter.
 * @property {(fn: () => void, ms: number) => any} setTimeout
 * @property {(id: any) => void} clearTimeout
 * @property {() => number} now milliseconds, monotonic.
 * @property {typeof WebSocket} WebSocket
 * @property {typeof fetch} fetch
 * @property {Document} [document] for visibilitychange.
 * @property {Window} [window] for online.
 * @property {Navigator} [navigator] for onLine.
 * @property {Location} [location] the base of relative URLs.
 */

/** @returns {Env} the browser's own. */
function browserEnv() {
  const g = globalThis;
  return {
    random: Math.random, setTimeout: g.setTimeout.bind(g), clearTimeout: g.clearTimeout.bind(g),
    now: () => g.performance.now(), WebSocket: g.WebSocket, fetch: g.fetch?.bind(g),
    document: g.document, window: g, navigator: g.navigator, location: g.location,
  };
}

const DEFAULTS = {
  credential: "cookie", refreshAt: 0.75, refreshRetries: 3, refreshTimeout: 10000,
  baseDelay: 500, maxDelay: 30000, resetAfter: 30000, maxRenewals: 3,
};

/**
 * A connection to a wsauth server that stays authorized and comes back.
 *
 * Events (each a CustomEvent; what is listed is its `detail`):
 * - `connecting` {attempt, credential, ticketExpiresIn?}: a handshake starts.
 * - `open` {welcome, protocol, expiresIn}: the server's welcome arrived.
 * - `message` the server's message, parsed when it is JSON: echoes, and
 *   the `error` answers to refreshes.
 * - `refreshed` {exp, expiresIn}: the connection lives on a renewed token.
 * - `closed` {code, reason, why, willRetry}: a connection, or an attempt,
 *   ended; sent once the client has decided what comes next.
 * - `reconnecting` {delay, attempt, why}: the next attempt starts in delay ms.
 * - `auth-required` {why, code, reason}: the credential was refused and
 *   renew gave none; the client has stopped. Sign in, then call start().
 */
export class WSAuthClient extends EventTarget {
  #o;
  #env;
  #state = "idle";
  #running = false;
  #gen = 0; // bumped by start() and by stopping: work of an older run ends
  #ws = null;
  #timers = new Set();
  #failures = 0; // attempts ended since a connection stayed up resetAfter
  #renewals = 0; // credentials renewed since a connection last opened
  #needCheck = true; // a refused handshake may still be explained by the check
  #token = null; // a token renew handed over, ahead of options.token
  #expiresAt = 0; // env.now() when the token expires; 0: unknown
  #refreshTimer = null;
  #answer = null; // resolves the refresh waiting for the server's answer
  #resume = null; // resolves an attempt waiting for the page to be visible and online
  #onEnv = () => {
    if (this.#resume && !this.#paused()) {
      const resume = this.#resume;
      this.#resume = null;
      resume();
    }
  };

  /** @param {Options} [options] */
  constructor(options = {}) {
    super();
    const env = { ...browserEnv(), ...options.env };
    const url = new URL(options.url ?? "/ws", env.location?.href);
    url.protocol = url.protocol.replace(/^http/, "ws");
    const base = new URL(url);
    base.protocol = url.protocol === "wss:" ? "https:" : "http:";
    this.#env = env;
    this.#o = {
      ...DEFAULTS, ...options, url,
      ticketURL: new URL(options.ticketURL ?? "/api/ws-ticket", base),
      checkURL: options.checkURL === null ? null : new URL(options.checkURL ?? "/api/ws-check", base),
    };
    if (!["cookie", "ticket", "subprotocol", "query"].includes(this.#o.credential)) {
      throw new TypeError(`wsauth: unknown credential ${this.#o.credential}`);
    }
  }

  /** @returns {string} idle, connecting, open, waiting, paused, renewing or stopped. */
  get state() { return this.#state; }

  /** Connects, and keeps connecting until close() or a reason to stop. */
  start() {
    if (this.#running) return;
    this.#running = true;
    this.#gen++;
    this.#failures = this.#renewals = 0;
    this.#needCheck = true;
    this.#env.document?.addEventListener("visibilitychange", this.#onEnv);
    this.#env.window?.addEventListener("online", this.#onEnv);
    this.#attempt(this.#gen);
  }

  /**
   * Sends data: a string or binary as is, anything else as JSON.
   * @returns {boolean} false when no connection is open.
   */
  send(data) {
    if (this.#state !== "open") return false;
    const raw = typeof data === "string" || data instanceof Blob || data instanceof ArrayBuffer || ArrayBuffer.isView(data);
    this.#ws.send(raw ? data : JSON.stringify(data));
    return true;
  }

  /** Ends everything: the connection (1000), the timers, the retries. */
  close(reason = "closed by the client") {
    if (!this.#running) return;
    const ws = this.#ws;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.close(1000, reason);
    }
    this.#stop({ code: 1000, reason, why: "closed" });
  }

  async #attempt(gen) {
    if (this.#paused()) {
      this.#state = "paused";
      await new Promise((resolve) => { this.#resume = resolve; });
    }
    if (gen !== this.#gen) return;
    this.#state = "connecting";
    const o = this.#o;
    const url = new URL(o.url);
    let protocols = [];
    let ticket;
    try {
      if (o.credential === "ticket") {
        ticket = await this.#mintTicket();
        url.searchParams.set("ticket", ticket.ticket);
      } else if (o.credential !== "cookie") {
        const token = await this.#currentToken();
        if (!token) throw { status: 401, error: "missing_token" };
        if (o.credential === "query") url.searchParams.set("token", token);
        else protocols = [SUBPROTOCOL, BEARER + token];
      }
    } catch (err) {
      if (gen === this.#gen) this.#ended(gen, { code: 1006, reason: "", refusal: asRefusal(err) });
      return;
    }
    if (gen !== this.#gen) return;
    this.#emit("connecting", { attempt: this.#failures, credential: o.credential, ticketExpiresIn: ticket?.expires_in });
    const ws = new this.#env.WebSocket(url.href, protocols);
    this.#ws = ws;
    let opened = false;
    ws.onopen = () => { opened = true; };
    ws.onmessage = (e) => this.#message(ws, e.data);
    ws.onclose = (e) => {
      if (gen !== this.#gen) return;
      this.#ws = null;
      this.#ended(gen, { code: e.code, reason: e.reason, opened });
    };
  }

  #message(ws, data) {
    let m = data;
    try { m = JSON.parse(data); } catch { /* not JSON: handed over as is */ }
    switch (m?.type) {
      case "welcome":
        this.#needCheck = true;
        this.#renewals = 0;
        this.#later(this.#o.resetAfter, () => { this.#failures = 0; });
        this.#state = "open";
        this.#emit("open", { welcome: m, protocol: ws.protocol, expiresIn: this.#arm(ws, m) });
        return;
      case "refreshed":
        this.#answered(m);
        this.#emit("refreshed", { exp: m.exp, expiresIn: this.#arm(ws, m) });
        return;
      case "error":
        this.#answered(m);
    }
    this.#emit("message", m);
  }

  /**
   * Notes when the token of a welcome or refreshed message expires, and arms
   * the in-band refresh. expires_in counts by the server's clock; exp, for
   * a server that sends no expires_in, by this browser's.
   * @returns {number|undefined} the seconds the token has left.
   */
  #arm(ws, m) {
    const secs = typeof m.expires_in === "number" ? m.expires_in : m.exp ? m.exp - Date.now() / 1000 : undefined;
    this.#cancel(this.#refreshTimer);
    this.#expiresAt = secs === undefined ? 0 : this.#env.now() + secs * 1000;
    if (secs !== undefined && this.#o.refreshAt > 0 && this.#o.renew) {
      this.#refreshTimer = this.#later(secs * 1000 * this.#o.refreshAt, () => this.#refresh(ws));
    }
    return secs;
  }

  /**
   * Moves the connection onto a renewed token: renew, then a refresh
   * message by ticket (minted by the renewed cookie) or by token. A refused
   * refresh is retried refreshRetries times, after its retry_after or a
   * doubling delay; then the token's expiry closes the connection (3000),
   * and the client asks renew again, as for any refusal.
   */
  async #refresh(ws) {
    const o = this.#o;
    for (let tries = 0; ; tries++) {
      let answer;
      try {
        const got = await this.#renew({ reason: "refresh" });
        if (!got || this.#ws !== ws) return;
        const msg = typeof got === "string" || o.credential === "subprotocol" || o.credential === "query"
          ? { type: "refresh", token: await this.#currentToken() }
          : { type: "refresh", ticket: (await this.#mintTicket()).ticket };
        if (this.#ws !== ws) return;
        let timeout;
        answer = await new Promise((resolve) => {
          this.#answer = resolve;
          timeout = this.#later(o.refreshTimeout, () => resolve({ type: "error", error: "timeout" }));
          ws.send(JSON.stringify(msg));
        });
        this.#cancel(timeout);
      } catch (err) {
        const r = asRefusal(err);
        answer = { type: "error", error: r.error, retry_after: r.retryAfter / 1000 };
      }
      this.#answer = null;
      if (answer.type === "refreshed" || this.#ws !== ws || tries >= o.refreshRetries) return;
      const wait = answer.retry_after > 0 ? answer.retry_after * 1000 : o.baseDelay * 2 ** tries;
      if (this.#expiresAt && this.#env.now() + wait >= this.#expiresAt) return;
      await new Promise((resolve) => this.#later(wait, resolve));
      if (this.#ws !== ws) return;
    }
  }

  #answered(m) {
    this.#answer?.(m);
    this.#answer = null;
  }

  /** Decides what follows a connection, or an attempt, that ended. */
  async #ended(gen, { code, reason, opened, refusal }) {
    this.#clearTimers();
    this.#answered({ type: "error", error: "closed" });
    if (!refusal && code === 1006 && !opened && this.#needCheck && this.#o.checkURL) {
      refusal = await this.#check();
      if (gen !== this.#gen) return;
    }
    let next = refusal ? afterRefusal(refusal) : afterClose(code);
    if (next.renew) {
      this.#state = "renewing";
      const got = this.#renewals < this.#o.maxRenewals && await this.#renew({ reason: "rejected", why: next.why });
      if (gen !== this.#gen) return;
      if (!got) {
        this.#emit("auth-required", { why: next.why, code, reason });
        this.#stop({ code, reason, why: next.why });
        return;
      }
      this.#renewals++;
      this.#needCheck = true; // a refusal of the new credential has its own cause
      next = { why: next.why, wait: 0 };
    }
    if (next.stop) {
      this.#stop({ code, reason, why: next.why });
      return;
    }
    this.#emit("closed", { code, reason, why: next.why, willRetry: true });
    if (gen !== this.#gen) return; // a listener called close()
    this.#failures++;
    // Full jitter: uniform in [0, cap), the cap doubling per failure.
    const cap = Math.min(this.#o.maxDelay, this.#o.baseDelay * 2 ** (this.#failures - 1));
    const delay = Math.floor((next.wait ?? 0) + this.#env.random() * cap);
    this.#state = "waiting";
    this.#emit("reconnecting", { delay, attempt: this.#failures, why: next.why });
    this.#later(delay, () => this.#attempt(gen));
  }

  /**
   * Asks the check route what /ws answered the refused handshake.
   * @returns {Promise<object|null>} the refusal, or null: the check found
   *   nothing wrong (204) or could not reach the server.
   */
  async #check() {
    const headers = {};
    if (this.#o.credential === "subprotocol" || this.#o.credential === "query") {
      // fetch cannot send Sec-WebSocket-Protocol; /ws takes a bearer header too.
      const token = await this.#currentToken().catch(() => "");
      if (token) headers.Authorization = "Bearer " + token;
    }
    let resp;
    try {
      resp = await this.#env.fetch(this.#o.checkURL, { headers, cache: "no-store", credentials: "same-origin" });
    } catch {
      return null; // the server is unreachable: ask again after the next refusal
    }
    this.#needCheck = false;
    return resp.status === 204 ? null : refusalOf(resp);
  }

  async #mintTicket() {
    let resp;
    try {
      resp = await this.#env.fetch(this.#o.ticketURL, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
        cache: "no-store", credentials: "same-origin",
      });
    } catch {
      throw { status: 0, error: "network" };
    }
    if (!resp.ok) throw await refusalOf(resp);
    return resp.json();
  }

  async #renew(info) {
    try {
      const got = await this.#o.renew?.(info);
      if (typeof got === "string" && got) this.#token = got;
      else if (got === true) this.#token = null; // options.token has the new one
      return got;
    } catch {
      return false;
    }
  }

  async #currentToken() {
    const t = this.#o.token;
    return this.#token ?? (typeof t === "function" ? await t() : t);
  }

  #paused() {
    return this.#env.document?.visibilityState === "hidden" || this.#env.navigator?.onLine === false;
  }

  #stop(detail) {
    this.#running = false;
    this.#gen++;
    this.#clearTimers();
    this.#resume = null;
    this.#env.document?.removeEventListener("visibilitychange", this.#onEnv);
    this.#env.window?.removeEventListener("online", this.#onEnv);
    this.#state = "stopped";
    this.#emit("closed", { ...detail, willRetry: false });
  }

  #later(ms, fn) {
    const id = this.#env.setTimeout(() => {
      this.#timers.delete(id);
      fn();
    }, ms);
    this.#timers.add(id);
    return id;
  }

  #cancel(id) {
    this.#env.clearTimeout(id);
    this.#timers.delete(id);
  }

  #clearTimers() {
    for (const id of this.#timers) this.#env.clearTimeout(id);
    this.#timers.clear();
  }

  #emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
}

/** What follows a close code: retry, renew the credential, or stop. */
function afterClose(code) {
  const why = WHY[code] ?? `close_${code}`;
  if (code === 3000) return { renew: true, why };
  return TRANSIENT.has(code) ? { why } : { stop: true, why };
}

/** What follows an HTTP refusal, from the check or the ticket request. */
function afterRefusal({ status, error, retryAfter }) {
  if (status === 0) return { why: "network" };
  if (status === 401) return { renew: true, why: "unauthorized" };
  if (status === 429 || status >= 500) return { why: error, wait: retryAfter };
  return { stop: true, why: error }; // 400, 403, 431: retrying cannot help
}

async function refusalOf(resp) {
  let error = "";
  try { error = (await resp.json()).error ?? ""; } catch { /* no JSON body */ }
  return { status: resp.status, error: error || `http_${resp.status}`, retryAfter: retryAfterMs(resp.headers.get("Retry-After")) };
}

function asRefusal(err) {
  return typeof err?.status === "number" ? { retryAfter: 0, ...err } : { status: 0, error: "network", retryAfter: 0 };
}

/** Retry-After (RFC 9110 §10.2.3): seconds, or a date; in ms, 0 if none. */
function retryAfterMs(v) {
  if (!v) return 0;
  const secs = Number(v);
  const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(v) - Date.now();
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}
