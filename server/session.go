package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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
type session struct {
	s  *Server
	rl *logRecord

	ws *websocket.Conn
	nc net.Conn

	mu        sync.Mutex // guards the fields below, and orders writes
	a         authorized // the principal and token now in force
	expiry    *time.Timer
	ping      *time.Timer
	closeSent bool
	closeCode int
	pending   *closeError // a close asked for before the upgrade finished
	finished  bool        // serve has returned: no timer may write
}

// Messages between client and server. Each has a "type".
type (
	welcomeMsg struct {
		Type  string   `json:"type"` // "welcome"
		Sub   string   `json:"sub"`
		Scope []string `json:"scope"`
		Exp   int64    `json:"exp,omitempty"`
	}
	echoMsg struct {
		Type string `json:"type"` // "echo"
		Sub  string `json:"sub"`
		Data string `json:"data"`
	}
	refreshMsg struct {
		Type  string `json:"type"` // "refresh", from the client
		Token string `json:"token"`
	}
	refreshedMsg struct {
		Type string `json:"type"` // "refreshed"
		Exp  int64  `json:"exp,omitempty"`
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

// serve runs the connection until it closes: it greets the client, then
// reads frames until the client closes, breaks the protocol, goes silent,
// or the server closes it (expiry, revocation, shutdown).
func (c *session) serve(ws *websocket.Conn, nc net.Conn, br *bufio.Reader) {
	c.mu.Lock()
	c.ws, c.nc = ws, nc
	p, pending := c.a.p, c.pending
	c.armExpiry()
	c.ping = time.AfterFunc(c.s.cfg.PingInterval, c.sendPing)
	c.mu.Unlock()
	defer c.stopTimers()

	if pending != nil {
		c.close(pending.code, pending.reason)
	} else if err := c.send(welcomeMsg{Type: "welcome", Sub: p.Subject, Scope: p.Scopes, Exp: unixOrZero(p.Expiry)}); err != nil {
		return
	}
	err := c.readLoop(br)
	var ce *closeError
	if errors.As(err, &ce) {
		c.close(ce.code, ce.reason)
		if ce.skip > 0 {
			br.Discard(int(ce.skip))
		}
		c.drain(br)
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
			return c.refresh(m.Token)
		}
	}
	c.mu.Lock()
	sub := c.a.p.Subject
	c.mu.Unlock()
	return c.send(echoMsg{Type: "echo", Sub: sub, Data: string(msg)})
}

// refresh moves the connection onto a new token of the same subject, so
// that it outlives the old token without reconnecting.
func (c *session) refresh(token string) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.WriteTimeout)
	defer cancel()
	p, err := c.s.cfg.Validator.Validate(ctx, token)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
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
	return c.sendLocked(refreshedMsg{Type: "refreshed", Exp: unixOrZero(p.Expiry)})
}

// recheck applies a fresh answer about token to the connection, unless the
// connection has moved to another token or ended meanwhile.
func (c *session) recheck(token string, p tokens.Principal, err error) {
	c.mu.Lock()
	if c.a.token != token || c.finished {
		// A finished session must not arm a new expiry timer: it would
		// keep the session and its buffers alive until the token expires.
		c.mu.Unlock()
		return
	}
	switch {
	case errors.Is(err, tokens.ErrInvalid):
		c.mu.Unlock()
		c.close(CloseUnauthorized, "token revoked")
	case err != nil:
		// The token system cannot answer: the connection keeps the answer
		// it had until its token expires (README: "Rechecks").
		c.mu.Unlock()
	case !p.HasScope("ws"):
		c.mu.Unlock()
		c.close(CloseForbidden, "insufficient scope")
	default:
		c.a.p = p
		c.armExpiry()
		c.mu.Unlock()
	}
}

// armExpiry (re)starts the timer that closes the connection when its token
// expires; c.mu must be held.
func (c *session) armExpiry() {
	if c.expiry != nil {
		c.expiry.Stop()
		c.expiry = nil
	}
	if exp := c.a.p.Expiry; !exp.IsZero() {
		c.expiry = time.AfterFunc(exp.Sub(c.s.cfg.Now()), func() { c.close(CloseUnauthorized, "token expired") })
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
	return codec.Send(c.ws, v)
}

// close sends the one close frame of this connection, with code and reason,
// and gives the client CloseTimeout to answer before the read loop gives up.
// Later calls do nothing.
func (c *session) close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
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
	for {
		h, err := readHeader(br)
		if err != nil {
			return
		}
		if h.op == opClose {
			return
		}
		if _, err := br.Discard(int(h.length)); err != nil {
			return
		}
	}
}

// drop closes the TCP connection without a closing handshake: for a client
// that did not answer within the shutdown deadline.
func (c *session) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc != nil {
		c.nc.Close()
	}
}

func (c *session) subject() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.a.p.Subject
}
