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
	"unicode/utf8"

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
type session struct {
	s  *Server
	rl *logRecord

	ws *websocket.Conn
	nc net.Conn // set once by serve; read by drop under ncMu, else under mu

	mu        sync.Mutex // guards the fields below, and orders writes
	a         authorized // the principal and token now in force
	expiry    *time.Timer
	expiryGen uint64 // counts armExpiry calls, so that a stale timer does nothing
	ping      *time.Timer
	closeSent bool // no frame may be written any more
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
		Type  string `json:"type"` // "error"
		Error string `json:"error"`
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
		ExpiresIn: expiresIn(p.Expiry, c.s.cfg.Now())}); err != nil && err != errCloseSent {
		return
	}
	err := c.readLoop(br)
	var ce *closeError
	if errors.As(err, &ce) {
		c.close(ce.code, ce.reason)
		switch {
		case ce.code == CloseProtocolError:
			// The stream is out of step: its next bytes may be the rest
			// of a frame, not a header.
			c.discard(br)
		case ce.skip > 0:
			if _, err := br.Discard(int(ce.skip)); err != nil {
				break
			}
			fallthrough
		default:
			c.drain(br)
		}
	}
	c.mu.Lock()
	if c.rl != nil {
		c.rl.closeCode = c.closeCode
	}
	c.mu.Unlock()
}

// readLoop reads client frames and acts on each message. It returns nil
// when the closing handshake is done, a *closeError when the client must be
// told why it is dropped, or the read error.
func (c *session) readLoop(br *bufio.Reader) error {
	cfg := &c.s.cfg
	idle := cfg.PingInterval + cfg.WriteTimeout
	var (
		msg   []byte // the message being read, reused
		msgOp byte   // its opcode; 0 when none is in progress
	)
	for {
		// RFC 6455 allows a peer to vanish without a FIN; a peer that sends
		// nothing, not even the pong to our ping, for idle is dropped.
		c.mu.Lock()
		if !c.closeSent {
			c.nc.SetReadDeadline(time.Now().Add(idle))
		}
		c.mu.Unlock()

		h, err := readHeader(br)
		if err != nil {
			return err
		}
		if h.op >= opClose {
			payload, err := readPayload(br, h, nil)
			if err != nil {
				return err
			}
			switch h.op {
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
			}
			continue
		}
		switch {
		case h.op == opContinuation && msgOp == 0:
			return protocolError("continuation frame without a message")
		case h.op != opContinuation && msgOp != 0:
			return protocolError("new message inside a fragmented one")
		case int64(len(msg))+h.length > int64(cfg.MaxMessageBytes):
			return &closeError{code: CloseMessageTooBig, reason: "message larger than the server accepts", skip: h.length}
		}
		if h.op != opContinuation {
			msgOp, msg = h.op, msg[:0]
		}
		if msg, err = readPayload(br, h, msg); err != nil {
			return err
		}
		if !h.fin {
			continue
		}
		op := msgOp
		msgOp = 0
		if op == opBinary {
			return &closeError{code: CloseUnsupportedData, reason: "this server reads text messages only"}
		}
		if !utf8.Valid(msg) {
			return &closeError{code: CloseInvalidPayload, reason: "text message is not UTF-8"}
		}
		if err := c.handle(msg); err != nil && err != errCloseSent {
			return err
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
// /ws (refreshToken):
//   - same subject, ws scope: the connection lives on the new token, its
//     expiry and its rechecks; the answer is
//     {"type":"refreshed","exp":…,"expires_in":…};
//   - another subject: close 3003, as a token for someone else is no
//     mistake a client makes by accident;
//   - invalid, lacking ws, or the token system cannot answer: the answer
//     is {"type":"error","error":…} with invalid_token, insufficient_scope
//     or temporarily_unavailable (the codes of the HTTP answers), and the
//     connection keeps its old token and expiry; a message with both a
//     token and a ticket is answered invalid_request.
func (c *session) refresh(m refreshMsg) error {
	token, err := c.s.refreshToken(m)
	var p tokens.Principal
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.WriteTimeout)
		defer cancel()
		p, err = c.s.cfg.Validator.Validate(ctx, token)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case errors.Is(err, errTwoRefreshCredentials):
		return c.sendLocked(errorMsg{Type: "error", Error: "invalid_request"})
	case errors.Is(err, tokens.ErrInvalid):
		return c.sendLocked(errorMsg{Type: "error", Error: "invalid_token"})
	case err != nil:
		return c.sendLocked(errorMsg{Type: "error", Error: "temporarily_unavailable"})
	case p.Subject != c.a.p.Subject:
		return &closeError{code: CloseForbidden, reason: "refresh token belongs to another subject"}
	case !p.HasScope("ws"):
		return c.sendLocked(errorMsg{Type: "error", Error: "insufficient_scope"})
	}
	c.a = authorized{p: p, token: token}
	c.armExpiry()
	return c.sendLocked(refreshedMsg{Type: "refreshed", Exp: unixOrZero(p.Expiry), ExpiresIn: expiresIn(p.Expiry, c.s.cfg.Now())})
}

var errTwoRefreshCredentials = errors.New("refresh carries both a token and a ticket")

// refreshToken is the token a refresh message carries: its token, or the
// token sealed in its ticket, which is spent by this use whatever the
// outcome. A ticket that cannot be opened is an error wrapping
// tokens.ErrInvalid (invalid_token); a full replay set is errTicketsFull
// (temporarily_unavailable).
func (s *Server) refreshToken(m refreshMsg) (string, error) {
	switch {
	case m.Ticket == "":
		return m.Token, nil
	case m.Token != "":
		// RFC 6750 §2: a client uses one method.
		return "", errTwoRefreshCredentials
	}
	return s.tickets.redeem(m.Ticket)
}

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
		reason := "token revoked"
		if exp := c.a.p.Expiry; !exp.IsZero() && !c.s.cfg.Now().Before(exp) {
			reason = "token expired"
		}
		c.closeLocked(CloseUnauthorized, reason)
	case err != nil:
		// The token system cannot answer: the connection keeps the answer
		// it had until its token expires (registry's "Rechecks").
	case !p.HasScope("ws"):
		c.closeLocked(CloseForbidden, "insufficient scope")
	default:
		c.a.p = p
		c.armExpiry()
	}
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
		c.closeLocked(CloseUnauthorized, "token expired")
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
