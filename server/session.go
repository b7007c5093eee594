package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/net/websocket"

	"wsauth/tokens"
)

// session is one open WebSocket and the token that keeps it open. It holds
// no goroutine of its own besides the one serving it: expiry and pings are
// timers.
//
// # Staying authorized
//
// The connection lives on one token at a time, its "a". It closes with 3000
// "token expired" when that token's expiry passes (a timer, re-armed when
// the token changes), and the registry's rechecks close it with 3000
// "token revoked" or 3003 "insufficient scope" (registry.go). A client
// moves it to a new token of the same subject with
// {"type":"refresh","token":…}; see refresh.
//
// # Dead peers and slow readers
//
// A peer can vanish without a FIN (cable pulled, NAT state dropped) or stop
// reading. Three things bound what it costs:
//   - every read has a deadline of PingInterval+WriteTimeout, reset by any
//     frame the client sends, pongs included, and the server pings every
//     PingInterval: a live client always answers within that, a dead one
//     is dropped within PingInterval+WriteTimeout of its last frame;
//   - every write has a deadline of WriteTimeout: a client that stops
//     reading fills the socket buffers, the write fails, and the
//     connection is dropped (a failed write may have sent half a frame, so
//     nothing, not even a close frame, can follow it);
//   - the listener's TCP keep-alive (net.Listen enables it, 15 s probes)
//     lets the kernel notice a dead peer of a connection nobody writes to.
//
// # Closing
//
// The server sends at most one close frame (close), then waits up to
// CloseTimeout for the client's, so that dropping the TCP connection does
// not destroy the close frame with a reset (RFC 6455 §7.1.1, §5.5.1).
// Meanwhile it only reads: no message that arrives after its close frame
// is handled.
type session struct {
	s  *Server
	rl *logRecord
	ip string // the handshake's client IP: a refresh's throttle key

	ws *websocket.Conn
	nc net.Conn // set once by serve; read by drop under ncMu, else under mu

	mu        sync.Mutex // guards the fields below, and orders writes
	a         authorized // the principal and token now in force
	expiry    *time.Timer
	expiryGen uint64 // counts armExpiry calls, so that a stale timer does nothing
	ping      *time.Timer
	refreshes bucket // refresh attempts left (refreshBurst, refreshRefill); the zero value is full
	closeSent bool   // no frame may be written any more
	closeCode int
	pending   *closeError // a close asked for before the upgrade finished
	finished  bool        // serve has returned: no timer may write

	// ncMu lets drop close the connection while mu is held by a write that
	// waits for a client that does not read.
	ncMu    sync.Mutex
	dropped bool
}

// Messages between client and server. Each has a "type".
type (
	welcomeMsg struct {
		Type      string   `json:"type"` // "welcome"
		Sub       string   `json:"sub"`
		Scope     []string `json:"scope"`
		Exp       int64    `json:"exp,omitempty"`
		ExpiresIn *int64   `json:"expires_in,omitempty"` // see expiresIn
	}
	echoMsg struct {
		Type string `json:"type"` // "echo"
		Sub  string `json:"sub"`
		Data string `json:"data"`
	}
	refreshMsg struct {
		Type   string `json:"type"` // "refresh", from the client
		Token  string `json:"token"`
		Ticket string `json:"ticket"` // instead of token: a one-time ticket (ticket.go)
	}
	refreshedMsg struct {
		Type      string `json:"type"` // "refreshed"
		Exp       int64  `json:"exp,omitempty"`
		ExpiresIn *int64 `json:"expires_in,omitempty"`
	}
	errorMsg struct {
		Type       string `json:"type"` // "error"
		Error      string `json:"error"`
		RetryAfter int    `json:"retry_after,omitempty"` // seconds
	}
)

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// expiresIn is the "expires_in" of the welcome and refreshed messages:
// whole seconds from now, by the server's clock, until exp, rounded down
// and never negative; nil, so that the field is left out, when the token
// has no expiry. A browser schedules its refresh from it rather than from
// exp, so that its own clock's error does not move the refresh (a client
// whose clock runs a minute fast would otherwise refresh a minute late).
func expiresIn(exp, now time.Time) *int64 {
	if exp.IsZero() {
		return nil
	}
	secs := max(int64(exp.Sub(now)/time.Second), 0)
	return &secs
}

// serve runs the connection until it closes: it greets the client, then
// reads frames until the client closes, breaks the protocol, goes silent,
// or the server closes it (expiry, revocation, shutdown).
func (c *session) serve(ws *websocket.Conn, nc net.Conn, br *bufio.Reader) {
	c.mu.Lock()
	c.ncMu.Lock()
	c.ws, c.nc = ws, nc
	dropped := c.dropped
	c.ncMu.Unlock()
	p, pending := c.a.p, c.pending
	c.armExpiry()
	c.ping = time.AfterFunc(c.s.cfg.PingInterval, c.sendPing)
	c.mu.Unlock()
	defer c.stopTimers()
	if dropped {
		return
	}

	if pending != nil {
		c.close(pending.code, pending.reason)
	} else if err := c.send(welcomeMsg{Type: "welcome", Sub: p.Subject, Scope: p.Scopes, Exp: unixOrZero(p.Expiry),
		ExpiresIn: expiresIn(p.Expiry, c.s.cfg.Now())}); err != nil && !errors.Is(err, errCloseSent) {
		return
	}
	c.finish(br, c.readLoop(br))
	c.mu.Lock()
	if c.rl != nil {
		c.rl.closeCode = c.closeCode
	}
	c.mu.Unlock()
}

// errServerClosed ends the read loop once the server has sent its close
// frame: what the client sends after it is read only to find the client's
// close (RFC 6455 §1.4, §7.1.1), never acted on. A message could otherwise
// be a refresh that asks the token system about a connection already
// closed.
var errServerClosed = errors.New("server sent its close frame")

// readLoop reads client messages and control frames (messageReader) and
// acts on each: it answers pings, echoes the client's close, and hands text
// messages to handle. It returns nil when the closing handshake is done,
// errServerClosed when the server closed first, a *closeError when the
// client must be told why it is dropped, or the read error.
func (c *session) readLoop(br *bufio.Reader) error {
	r := messageReader{br: br, limit: c.s.cfg.MaxMessageBytes, frameStart: c.renewReadDeadline}
	for {
		if c.closing() {
			return errServerClosed
		}
		op, payload, err := r.next()
		if err != nil {
			return err
		}
		switch op {
		case opPing:
			c.write(pongCodec, payload)
		case opClose:
			code, reason, err := parseClose(payload)
			if err != nil {
				return err
			}
			// §5.5.1: answer a close with a close, echoing its code;
			// close does nothing if the server's close went first.
			c.close(code, reason)
			return nil
		case opText:
			// The server's close may have gone out while the message
			// arrived.
			if c.closing() {
				return errServerClosed
			}
			if err := c.handle(payload); err != nil && !errors.Is(err, errCloseSent) {
				return err
			}
		}
	}
}

// renewReadDeadline sets the deadline for the next frame: RFC 6455 allows a
// peer to vanish without a FIN, and a peer that sends nothing, not even the
// pong to our ping, for PingInterval+WriteTimeout is dropped. After the
// server's close frame the deadline is CloseTimeout's, which close set.
func (c *session) renewReadDeadline() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closeSent {
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.PingInterval + c.s.cfg.WriteTimeout))
	}
}

// closing reports whether the server has sent its close frame. It waits
// for c.mu, which close holds until closeSent is set, so a frame the client
// sent after it read the close frame always finds it set.
func (c *session) closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeSent
}

// finish completes the closing handshake after readLoop returned err: it
// sends the close a *closeError asks for, then reads what the client still
// sends until its close frame or the deadline (drain), or, when the stream
// is out of step, until the client hangs up (discard).
func (c *session) finish(br *bufio.Reader, err error) {
	var ce *closeError
	switch {
	case errors.Is(err, errServerClosed):
		c.drain(br)
	case errors.As(err, &ce):
		c.close(ce.code, ce.reason)
		switch {
		case ce.code == CloseProtocolError:
			// The stream is out of step: its next bytes may be the rest
			// of a frame, not a header.
			c.discard(br)
		case skipPayload(br, ce.skip) == nil:
			c.drain(br)
		}
	}
}

// handle answers one text message: a refresh, or anything else echoed with
// the subject, which the handler knows without the token being sent again.
func (c *session) handle(msg []byte) error {
	if len(msg) > 0 && msg[0] == '{' {
		var m refreshMsg
		if json.Unmarshal(msg, &m) == nil && m.Type == "refresh" {
			return c.refresh(m)
		}
	}
	c.mu.Lock()
	sub := c.a.p.Subject
	c.mu.Unlock()
	return c.sendEcho(sub, msg) // echo.go: echoMsg, encoded without allocating
}

// refresh moves the connection onto a new token of the same subject, so
// that it outlives the old token without reconnecting (Centrifugo has the
// same flow). The client sends {"type":"refresh","token":…}, or
// {"type":"refresh","ticket":…} with a one-time ticket, which a browser
// mints by its renewed HttpOnly cookie and which is opened and spent as on
// /ws (refreshCredential):
//   - same subject, the scope /ws needs: the connection lives on the new
//     token, its expiry and its rechecks; the answer is
//     {"type":"refreshed","exp":…,"expires_in":…};
//   - anything else: the error's in-band message (errors.go),
//     {"type":"error","error":…}, and the connection keeps its old token
//     and expiry. An invalid token and another subject's valid token both
//     get invalid_token, so that refresh tells a guesser nothing; a token
//     without the scope gets insufficient_scope; a token system that cannot
//     answer temporarily_unavailable; both a token and a ticket,
//     invalid_request.
//
// A refresh is an authentication like a handshake's, and costs the same:
// a failure counts against the handshake's client IP and the presented
// token in the throttle of failed authentications, and past its burst the
// answer is too_many_requests with "retry_after", without asking the token
// system. Besides, one connection may ask refreshBurst times at once and
// then once per refreshRefill, whatever the answers: a client refreshes
// about once per token lifetime, and a socket must not be a free channel
// to the token system.
func (c *session) refresh(m refreshMsg) error {
	c.mu.Lock()
	now := c.s.cfg.Now()
	level := c.refreshes.level(now, refreshBurst, refreshRefill)
	if level < 1 {
		defer c.mu.Unlock()
		return c.sendLocked(answerFor(&throttledError{untilOne(level, refreshRefill)}).message())
	}
	c.refreshes = bucket{tokens: level - 1, last: now}
	sub, scope := c.a.p.Subject, c.a.scope // a refresh changes neither
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.WriteTimeout)
	defer cancel()
	cred, err := refreshCredential(m)
	var a authorized
	if err == nil {
		a, err = c.s.validate(ctx, c.ip, cred, sub)
	}
	if err == nil && !a.p.HasScope(scope) {
		err = &scopeError{scope: scope}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		return c.sendLocked(answerFor(err).message())
	}
	a.scope = scope
	c.a = a
	c.armExpiry()
	return c.sendLocked(refreshedMsg{Type: "refreshed", Exp: unixOrZero(a.p.Expiry), ExpiresIn: expiresIn(a.p.Expiry, c.s.cfg.Now())})
}

var errTwoRefreshCredentials = badRequest("a refresh carries a token or a ticket, not both (RFC 6750 §2)")

// refreshCredential is what a refresh message presents: its token, or its
// ticket, which validate opens and spends as on /ws.
func refreshCredential(m refreshMsg) (credential, error) {
	switch {
	case m.Ticket == "":
		return credential{value: m.Token}, nil
	case m.Token != "":
		return credential{}, errTwoRefreshCredentials
	}
	return credential{value: m.Ticket, source: fromTicket}, nil
}

// One connection's refreshes: refreshBurst at once, then one more every
// refreshRefill. A client refreshes about once per token lifetime (minutes
// to hours) and retries a failed refresh a few times; ten cover a few
// rounds of retries, and one a minute is more than any token lifetime
// needs, while it caps what one socket can ask of the token system.
const (
	refreshBurst  = 10
	refreshRefill = time.Minute
)

// recheck applies a fresh answer about token to the connection, unless the
// connection has moved to another token or ended meanwhile.
func (c *session) recheck(token string, p tokens.Principal, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.a.token != token || c.finished {
		// A finished session must not arm a new expiry timer: it would
		// keep the session and its buffers alive until the token expires.
		return
	}
	switch {
	case errors.Is(err, tokens.ErrInvalid):
		// An invalid token past its known expiry has expired, whichever of
		// the recheck and the expiry timer got here first.
		err = errTokenRevoked
		if exp := c.a.p.Expiry; !exp.IsZero() && !c.s.cfg.Now().Before(exp) {
			err = errTokenExpired
		}
	case err != nil:
		// The token system cannot answer: the connection keeps the answer
		// it had until its token expires (registry's "Rechecks").
		return
	case !p.HasScope(c.a.scope):
		err = &scopeError{scope: c.a.scope, lost: true}
	default:
		c.a.p = p
		c.armExpiry()
		return
	}
	c.closeForLocked(err)
}

// armExpiry (re)starts the timer that closes the connection when its token
// expires; c.mu must be held.
func (c *session) armExpiry() {
	if c.expiry != nil {
		c.expiry.Stop()
		c.expiry = nil
	}
	c.expiryGen++
	if exp := c.a.p.Expiry; !exp.IsZero() {
		gen := c.expiryGen
		c.expiry = time.AfterFunc(exp.Sub(c.s.cfg.Now()), func() { c.expire(gen) })
	}
}

// expire closes the connection with 3000 unless the timer of generation gen
// has been replaced meanwhile: Stop cannot recall a timer that has fired
// and waits for c.mu, held by the refresh that moved the connection onto a
// later token.
func (c *session) expire(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.expiryGen {
		c.closeForLocked(errTokenExpired)
	}
}

func (c *session) sendPing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished || c.writeLocked(pingCodec, []byte(nil)) != nil {
		return
	}
	c.ping.Reset(c.s.cfg.PingInterval)
}

func (c *session) stopTimers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finished = true
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.ping.Stop()
}

var errCloseSent = errors.New("close frame already sent")

// send writes v as a JSON text message.
func (c *session) send(v any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendLocked(v)
}

func (c *session) sendLocked(v any) error {
	return c.writeLocked(websocket.JSON, v)
}

// write sends one frame with codec; c.mu orders it with the close frame,
// which must be the last frame sent (RFC 6455 §5.5.1).
func (c *session) write(codec websocket.Codec, v any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeLocked(codec, v)
}

func (c *session) writeLocked(codec websocket.Codec, v any) error {
	if c.closeSent {
		return errCloseSent
	}
	// A client that stops reading must not pin this goroutine.
	c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	if err := codec.Send(c.ws, v); err != nil {
		// Part of the frame may have gone out: no frame can follow it, not
		// even a close. Dropping the connection also ends the read loop.
		c.closeSent = true
		c.nc.Close()
		return err
	}
	return nil
}

// close sends the one close frame of this connection, with code and reason,
// and gives the client CloseTimeout to answer before the read loop gives up.
// Later calls do nothing.
func (c *session) close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason)
}

// closeFor closes the connection with the close code and reason of err's
// answer (errors.go).
func (c *session) closeFor(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeForLocked(err)
}

func (c *session) closeForLocked(err error) {
	a := answerFor(err)
	c.closeLocked(a.closeCode, a.closeReason)
}

// closeLocked is close with c.mu held.
func (c *session) closeLocked(code int, reason string) {
	if c.ws == nil {
		if c.pending == nil {
			c.pending = &closeError{code: code, reason: reason}
		}
		return
	}
	if c.closeSent || c.finished {
		return
	}
	c.writeLocked(closeCodec, closePayload(code, reason))
	c.closeSent, c.closeCode = true, code
	c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.CloseTimeout))
}

// drain reads, after the server's close frame, until the client's close
// frame or the deadline, so that unread bytes do not make the kernel reset
// the connection and lose the close frame on its way (RFC 6455 §7.1.1).
func (c *session) drain(br *bufio.Reader) {
	if _, ok := errors.AsType[*closeError](awaitClose(br)); ok {
		c.discard(br) // the client's stream is out of step
	}
}

// discard is drain for a stream that can no longer be read as frames: it
// half-closes the connection after the close frame, so that the client
// sees the end at once, and reads raw bytes until the client closes its
// side or the deadline passes. Returning at once would leave unread bytes,
// and the reset they cause can destroy the close frame before the client
// reads it.
func (c *session) discard(br *bufio.Reader) {
	if hc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		hc.CloseWrite() // TCP FIN; a TLS close_notify first
	}
	io.Copy(io.Discard, br)
}

// drop closes the TCP connection without a closing handshake: for a client
// that did not answer within the shutdown deadline. It does not wait for
// c.mu, which a write to a client that does not read may hold for up to
// WriteTimeout.
func (c *session) drop() {
	c.ncMu.Lock()
	defer c.ncMu.Unlock()
	c.dropped = true
	if c.nc != nil {
		c.nc.Close()
	}
}

func (c *session) subject() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.a.p.Subject
}
