package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"wsauth/tokens"
)

// session is one open WebSocket and the token that keeps it open. It holds
// one goroutine, which reads the connection (serve), and no more: expiry is
// a timer, and pings are sent by the reader when the client is silent.
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
// reading. Two things bound what it costs:
//   - a client that sends nothing, not even a pong, for PingInterval is
//     pinged, and one that stays silent for WriteTimeout more is dropped;
//     the rest of a frame that has started must arrive within
//     PingInterval+WriteTimeout. Any frame the client sends, pongs
//     included, starts the count again, so a live client is never dropped,
//     and a dead one is dropped within PingInterval+WriteTimeout of its
//     last frame. No connection goes unwritten-to for longer, so TCP
//     keep-alive has nothing to add (cmd/wsauth turns it off);
//   - every write has a deadline of WriteTimeout: a client that stops
//     reading fills the socket buffers, the write fails, and the
//     connection is dropped (a failed write may have sent half a frame, so
//     nothing, not even a close frame, can follow it).
//
// # Closing
//
// The server sends at most one close frame (close), then waits up to
// CloseTimeout for the client's, so that dropping the TCP connection does
// not destroy the close frame with a reset (RFC 6455 §7.1.1, §5.5.1).
// Meanwhile it only reads: no message that arrives after its close frame
// is handled.
//
// # Memory
//
// A silent connection holds its goroutine, parked in a read, this struct
// with its 256-byte read buffer (connReader), and its expiry timer: no
// 4 KiB reader or writer, no *http.Request. Buffers are borrowed from
// pools while bytes are in flight.
type session struct {
	s   *Server
	log logRecord // the handshake's log line, written when the session ends
	ip  string    // the handshake's client IP: a refresh's throttle key

	nc net.Conn      // set once by start; read by drop under ncMu, else under mu or by serve's goroutine
	in connReader    // serve's goroutine only
	r  messageReader // serve's goroutine only

	mu        sync.Mutex // guards the fields below, and orders writes
	a         authorized // the principal and token now in force
	expiry    *time.Timer
	expiryGen uint64  // counts armExpiry calls, so that a stale timer does nothing
	refreshes bucket  // refresh attempts left (refreshBurst, refreshRefill); the zero value is full
	upgrade   *[]byte // the 101, not yet written: it goes out with the first frame
	// The connection's deadlines as last set, so that one set a moment ago
	// is not set again (deadlineSlack): the read deadline and the wait it
	// was set for, and the write deadline.
	readDeadline  time.Time
	readWait      time.Duration
	writeDeadline time.Time
	closeSent     bool // no frame may be written any more
	closeCode     int
	pending       *closeError // a close asked for before the upgrade finished
	finished      bool        // serve has returned: no timer may write

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

// start takes the upgraded connection over and greets the client, on the
// handler's goroutine, before serve's: nc, the reader the upgrade left (it
// may hold what the client sent after its handshake), and a copy of the
// request's log record, whose line the session writes when the connection
// ends. The handler's copy is marked handed off, so that it writes none;
// the 101 it holds goes out with the welcome, in one write. The welcome is
// sent here because the handler's stack has already grown for the JSON
// encoder: serve's goroutine starts small, and growing it costs a copy.
//
// start reports whether the connection goes on, for serve to read; when
// not, it has ended it.
func (c *session) start(nc net.Conn, br *bufio.Reader, rl *logRecord, ip string) bool {
	c.mu.Lock()
	c.ncMu.Lock()
	c.nc = nc
	dropped := c.dropped
	c.ncMu.Unlock()
	c.ip = ip
	c.in.nc, c.in.renew = nc, c.renewReadDeadline
	c.in.adopt(br)
	if rl != nil {
		c.upgrade, rl.upgrade = rl.upgrade, nil
		rl.handedOff = true
		c.log = *rl
	}
	p, pending := c.a.p, c.pending
	c.armExpiry()
	c.mu.Unlock()

	var err error
	switch {
	case dropped:
		err = net.ErrClosed
	case pending != nil:
		c.close(pending.code, pending.reason)
	default:
		err = c.send(welcomeMsg{Type: "welcome", Sub: p.Subject, Scope: p.Scopes, Exp: unixOrZero(p.Expiry),
			ExpiresIn: expiresIn(p.Expiry, c.s.cfg.Now())})
	}
	if err != nil && !errors.Is(err, errCloseSent) {
		c.end()
		return false
	}
	// The first wait's deadline is set here too: on serve's goroutine, the
	// runtime's timer code would grow the stack past 2 KiB before it
	// parks, and a connection that stays silent would keep 4.
	c.setReadDeadline(c.s.cfg.PingInterval)
	c.in.armed = true
	return true
}

// serve runs the connection, on a goroutine of its own, until it closes:
// it waits for the client's bytes (await) and reads the frames that came
// (readLoop), over and over, until the client closes, breaks the protocol
// or goes silent, or the server closes it (expiry, revocation, shutdown).
// Then it ends the session.
//
// The wait is here, at the top of the goroutine's stack, so that a silent
// connection parks its goroutine within the 2 KiB stack Go starts it
// with; the frames of readLoop would take it past.
func (c *session) serve() {
	defer c.end()
	err := c.readLoop()
	for err == errWait {
		if err = c.await(); err == nil {
			err = c.readLoop()
		}
	}
	c.finish(err)
}

// end closes the connection, writes the log line and leaves the registry.
func (c *session) end() {
	c.stopTimers()
	c.mu.Lock()
	if c.upgrade != nil { // dropped before a frame went out
		frameBufs.put(c.upgrade)
		c.upgrade = nil
	}
	c.log.closeCode = c.closeCode
	c.mu.Unlock()
	c.nc.Close()
	c.r.release()
	c.in.close()
	if c.log.handedOff {
		c.s.logRequest(context.Background(), &c.log)
	}
	c.s.conns.release(c)
}

// errServerClosed ends the read loop once the server has sent its close
// frame: what the client sends after it is read only to find the client's
// close (RFC 6455 §1.4, §7.1.1), never acted on. A message could otherwise
// be a refresh that asks the token system about a connection already
// closed.
var errServerClosed = errors.New("server sent its close frame")

// readLoop reads client messages and control frames (messageReader) and
// acts on each: it answers pings, echoes the client's close, and hands text
// messages to handle. It returns errWait when the bytes that came are used
// up, nil when the closing handshake is done, errServerClosed when the
// server closed first, a *closeError when the client must be told why it is
// dropped, or the read error.
func (c *session) readLoop() error {
	r := &c.r
	if r.frameStart == nil {
		*r = messageReader{limit: c.s.cfg.MaxMessageBytes, frameStart: c.nextFrame}
	}
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
			c.write(opPong, payload)
		case opClose:
			code, reason, err := parseClose(payload)
			if err != nil {
				return err
			}
			// §5.5.1: answer a close with a close, echoing its code;
			// answerClose does nothing if the server's close went first.
			c.answerClose(code, reason)
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

// errWait is nextFrame's answer when no byte of the next frame has come:
// readLoop returns, and serve waits.
var errWait = errors.New("waiting for the client")

// nextFrame is the messageReader's frameStart: the reader to read the next
// frame from, or errWait when nothing is buffered. The frame has
// PingInterval+WriteTimeout to arrive, renewed before the first read from
// the connection it needs (connReader.Read): a frame that is already
// buffered needs none.
func (c *session) nextFrame() (*bufio.Reader, error) {
	br := c.in.buffered()
	if br == nil {
		return nil, errWait
	}
	c.in.stale, c.in.armed = true, false
	return br, nil
}

// await waits, without a read buffer (connReader.fill), for the client's
// next bytes: for PingInterval, then it pings and waits WriteTimeout more.
// A client that does not answer fails the read with a timeout: RFC 6455
// allows a peer to vanish without a FIN. After the server's close frame
// the deadline is CloseTimeout's, which close set.
func (c *session) await() error {
	if !c.in.armed {
		c.setReadDeadline(c.s.cfg.PingInterval)
	}
	c.in.armed = false
	err := c.in.fill()
	if isTimeout(err) && c.write(opPing, nil) == nil {
		c.setReadDeadline(c.s.cfg.WriteTimeout)
		err = c.in.fill()
	}
	return err
}

// renewReadDeadline gives a frame in progress PingInterval+WriteTimeout.
func (c *session) renewReadDeadline() {
	c.setReadDeadline(c.s.cfg.PingInterval + c.s.cfg.WriteTimeout)
}

// setReadDeadline sets the read deadline d from now, unless the server's
// close frame has gone out, whose CloseTimeout stands.
func (c *session) setReadDeadline(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return
	}
	at := time.Now().Add(d)
	if d == c.readWait && c.readDeadline.After(at.Add(-deadlineSlack(d))) {
		return // set for the same wait a moment ago: it stands
	}
	c.readDeadline, c.readWait = at, d
	c.nc.SetReadDeadline(at)
}

// deadlineSlack is how much earlier than asked a deadline may fall: one set
// for the same wait less than this long ago is not set again. Setting a
// deadline updates a runtime timer, and a busy connection would otherwise
// do it twice per message (a wait before it, a write after it), for a
// change of microseconds in when a silent client is pinged or a stalled
// write fails. An eighth of d, and at most a second.
func deadlineSlack(d time.Duration) time.Duration {
	return min(d/8, time.Second)
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

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
func (c *session) finish(err error) {
	var ce *closeError
	switch {
	case errors.Is(err, errServerClosed):
		c.drain()
	case errors.As(err, &ce):
		c.close(ce.code, ce.reason)
		switch {
		case ce.code == CloseProtocolError:
			// The stream is out of step: its next bytes may be the rest
			// of a frame, not a header.
			c.discard()
		case skipPayload(c.in.hold(), ce.skip) == nil:
			c.drain()
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
	return c.sendEcho(msg) // echo.go: echoMsg, encoded without allocating
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

// stopTimers marks the session finished, so that no timer or recheck
// writes or arms anything, and stops the expiry timer.
func (c *session) stopTimers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finished = true
	if c.expiry != nil {
		c.expiry.Stop()
	}
}

var errCloseSent = errors.New("close frame already sent")

// send writes v as a JSON text message.
func (c *session) send(v any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendLocked(v)
}

func (c *session) sendLocked(v any) error {
	p, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.writeLocked(opText, p)
}

// write sends one frame; c.mu orders it with the close frame, which must be
// the last frame sent (RFC 6455 §5.5.1).
func (c *session) write(op byte, payload []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeLocked(op, payload)
}

func (c *session) writeLocked(op byte, payload []byte) error {
	if c.closeSent {
		return errCloseSent
	}
	bp := c.frameBuf()
	*bp = append(appendFrameHeader(*bp, op, len(payload)), payload...)
	err := c.flushLocked(*bp, true)
	frameBufs.put(bp)
	return err
}

// frameBuf returns the buffer to build the next frame in: the one holding
// the 101 while it waits for the first frame, else an empty pooled one.
// c.mu must be held.
func (c *session) frameBuf() *[]byte {
	if bp := c.upgrade; bp != nil {
		c.upgrade = nil
		return bp
	}
	return frameBufs.get()
}

// flushLocked writes b, all or part of a frame. start says a frame starts
// with it: a client that stops reading must not pin the connection's
// writer, so a frame has WriteTimeout to go out.
func (c *session) flushLocked(b []byte, start bool) error {
	if start {
		// A frame has WriteTimeout to go out, give or take deadlineSlack.
		w := c.s.cfg.WriteTimeout
		if at := time.Now().Add(w); !c.writeDeadline.After(at.Add(-deadlineSlack(w))) {
			c.writeDeadline = at
			c.nc.SetWriteDeadline(at)
		}
	}
	_, err := c.nc.Write(b)
	if err != nil {
		// Part of the frame may have gone out: no frame can follow it, not
		// even a close. Dropping the connection also ends the read loop.
		c.closeSent = true
		c.nc.Close()
	}
	return err
}

// close sends the one close frame of this connection, with code and reason,
// and gives the client CloseTimeout to answer before the read loop gives up.
// Later calls do nothing.
func (c *session) close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason)
}

// answerClose answers the client's close frame with the server's, unless
// the server's went first. The closing handshake is then complete: no
// read follows, and so no CloseTimeout.
func (c *session) answerClose(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sendCloseLocked(code, reason)
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
	if c.nc == nil {
		if c.pending == nil {
			c.pending = &closeError{code: code, reason: reason}
		}
		return
	}
	if c.sendCloseLocked(code, reason) {
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.CloseTimeout))
	}
}

// sendCloseLocked writes the connection's one close frame, unless it has
// gone out or serve has returned, and reports whether it did; c.mu must be
// held.
func (c *session) sendCloseLocked(code int, reason string) bool {
	if c.closeSent || c.finished {
		return false
	}
	c.writeLocked(opClose, closePayload(code, reason))
	c.closeSent, c.closeCode = true, code
	return true
}

// drain reads, after the server's close frame, until the client's close
// frame or the deadline, so that unread bytes do not make the kernel reset
// the connection and lose the close frame on its way (RFC 6455 §7.1.1).
func (c *session) drain() {
	if _, ok := errors.AsType[*closeError](awaitClose(c.in.hold())); ok {
		c.discard() // the client's stream is out of step
	}
}

// discard is drain for a stream that can no longer be read as frames: it
// half-closes the connection after the close frame, so that the client
// sees the end at once, and reads raw bytes until the client closes its
// side or the deadline passes. Returning at once would leave unread bytes,
// and the reset they cause can destroy the close frame before the client
// reads it.
func (c *session) discard() {
	if hc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		hc.CloseWrite() // TCP FIN; a TLS close_notify first
	}
	io.Copy(io.Discard, c.in.hold())
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
