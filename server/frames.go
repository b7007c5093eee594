package server

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"unicode/utf8"

	"golang.org/x/net/websocket"
)

// This file is the one place that works around golang.org/x/net/websocket.
// x/net does the opening handshake (ws.go); after it, the server reads and
// writes frames itself, because x/net's Conn cannot serve an authorizing
// server:
//   - it drops a client's close frame unread, so the close code is lost, and
//     never answers it (RFC 6455 §5.5.1 says to);
//   - it answers pings but swallows pongs, so a server cannot tell a live
//     peer from a dead one;
//   - it hands each fragment to the handler as a message, and its
//     MaxPayloadBytes bounds a frame, not a message;
//   - its Close always sends 1000, with no reason;
//   - it keeps a 4 KiB reader, a 4 KiB writer and the *http.Request for as
//     long as the connection lives, idle or not.
// So the server reads client frames with a messageReader below, through a
// connReader that holds a read buffer only while bytes are buffered, and
// writes each frame with one write from a pooled buffer (appendFrameHeader).

// Opcodes, RFC 6455 §5.2.
const (
	opContinuation = 0x0
	opText         = websocket.TextFrame
	opBinary       = websocket.BinaryFrame
	opClose        = websocket.CloseFrame
	opPing         = websocket.PingFrame
	opPong         = websocket.PongFrame
)

// Close codes this server sends or reads (RFC 6455 §7.4; 3000 and 3003 are
// IANA's registered twins of HTTP 401 and 403). docs/REFERENCE.md says what
// a client should do on each.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001 // the server is shutting down: reconnect
	CloseProtocolError   = 1002
	CloseUnsupportedData = 1003 // binary message: this server speaks text
	CloseNoStatus        = 1005 // never sent: an empty close frame
	CloseInvalidPayload  = 1007 // text that is not UTF-8
	ClosePolicyViolation = 1008 // not sent: a silent peer is dropped without a close it could not read
	CloseMessageTooBig   = 1009
	CloseUnauthorized    = 3000 // the token is no longer valid: get a new one, then reconnect
	CloseForbidden       = 3003 // the token is valid but lacks the scope
)

const (
	maxControlPayload     = 125
	maxCloseReason        = maxControlPayload - 2
	closeReasonTruncation = "…"
)

// closeError is a reason to close the connection with code.
type closeError struct {
	code   int
	reason string
	skip   int64 // payload bytes of the offending frame left unread
}

func (e *closeError) Error() string { return fmt.Sprintf("close %d: %s", e.code, e.reason) }

func protocolError(reason string) error { return &closeError{code: CloseProtocolError, reason: reason} }

// frameHeader is a client frame's header (RFC 6455 §5.2).
type frameHeader struct {
	fin    bool
	op     byte
	length int64
	mask   [4]byte
}

// readHeader reads the header of one client frame and checks what RFC 6455
// requires of it. Protocol violations are *closeError with 1002. It reads
// with Peek and Discard, in place in br's buffer: io.ReadFull into a local
// array would move the array to the heap, an allocation per frame.
func readHeader(br *bufio.Reader) (frameHeader, error) {
	var h frameHeader
	b, err := br.Peek(2)
	if err != nil {
		return h, err
	}
	h.fin = b[0]&0x80 != 0
	h.op = b[0] & 0x0f
	masked := b[1]&0x80 != 0
	h.length = int64(b[1] & 0x7f)
	switch {
	case b[0]&0x70 != 0:
		return h, protocolError("reserved bits set without an extension") // §5.2
	case !masked:
		return h, protocolError("client frame not masked") // §5.1
	case h.op > opBinary && h.op < opClose, h.op > opPong:
		return h, protocolError("unknown opcode")
	case h.op >= opClose && (!h.fin || h.length > maxControlPayload):
		return h, protocolError("fragmented or oversized control frame") // §5.5
	}
	size := 2 + 4 // the first two bytes and the masking key
	switch h.length {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if b, err = br.Peek(size); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, err
	}
	switch h.length {
	case 126:
		h.length = int64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		n := binary.BigEndian.Uint64(b[2:10])
		if n>>63 != 0 {
			return h, protocolError("frame length has its top bit set") // §5.2
		}
		h.length = int64(n)
	}
	copy(h.mask[:], b[size-4:])
	_, err = br.Discard(size)
	return h, err
}

// readChunk is how far a payload buffer may grow ahead of the bytes that
// have arrived. A frame's length is only the client's claim: a buffer sized
// by it up front would let a client that announces 64 KiB and sends one
// byte hold 64 KiB for as long as it stays silent.
const readChunk = 4 << 10

// readPayload appends h's payload, unmasked, to dst. It reads at most
// readChunk at a time and grows dst only for the chunk it reads, never
// past the frame's end, so dst holds at most twice the bytes received, plus
// one chunk. The caller bounds h.length: len(dst)+h.length must fit the
// message limit.
func readPayload(br *bufio.Reader, h frameHeader, dst []byte) ([]byte, error) {
	for done := int64(0); done < h.length; {
		rest := h.length - done
		n := int(min(rest, readChunk))
		dst = grow(dst, n, rest)
		start := len(dst)
		m, err := io.ReadFull(br, dst[start:start+n])
		dst = dst[:start+m]
		unmask(dst[start:], h.mask, done)
		done += int64(m)
		if err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// grow returns dst with room for n more bytes. It at least doubles the
// capacity, so that a message of N bytes costs O(log N) copies, but never
// beyond rest more bytes, the end of the frame being read.
func grow(dst []byte, n int, rest int64) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	c := max(2*cap(dst), len(dst)+n)
	if int64(c-len(dst)) > rest {
		c = len(dst) + int(rest) // rest < c-len(dst): no overflow
	}
	return append(make([]byte, 0, c), dst...)
}

// unmask XORs b, which starts at offset in its frame's payload, with the
// client's masking key (RFC 6455 §5.3).
func unmask(b []byte, mask [4]byte, offset int64) {
	k := int(offset & 3)
	for i := range b {
		b[i] ^= mask[(k+i)&3]
	}
}

// skipPayload discards n payload bytes. A frame may announce up to 2^63−1
// (RFC 6455 §5.2), more than an int holds on a 32-bit platform, so it
// skips in chunks rather than converting n.
func skipPayload(br *bufio.Reader, n int64) error {
	for n > 0 {
		m, err := br.Discard(int(min(n, readChunk)))
		n -= int64(m)
		if err != nil {
			return err
		}
	}
	return nil
}

// messageReader reads a client's frames and returns whole messages, and
// the control frames that arrive between and inside them (RFC 6455 §5.4:
// a control frame may come between the fragments of a message). It
// enforces what a message must be on this server:
//   - fragments in order: a continuation only inside a message, a new
//     message only after the last one ended (§5.4; 1002);
//   - at most limit bytes in all its fragments, refused at the header of
//     the frame that would pass it, before its payload is read (1009);
//   - text: this server speaks JSON, so binary data is data it cannot
//     accept (§7.4.1; 1003);
//   - valid UTF-8 once whole, as a fragment may end inside a character
//     (§8.1; 1007).
//
// Lengths are compared, never added: a client chooses them, up to 2^63−1.
//
// A message's buffer comes from msgBufs and goes back when the next call
// starts, so that a connection holds no buffer between messages; one that
// grew past maxPooledMsg is left to the garbage collector.
type messageReader struct {
	br    *bufio.Reader
	limit int
	// frameStart, when set, runs before each frame is read and returns the
	// reader to read it from, in br's place: the session waits there for
	// the next bytes of a silent client without a read buffer
	// (connReader), pings it, and renews its read deadline, so that any
	// frame, a fragment or a pong, shows that the peer is alive.
	frameStart func() (*bufio.Reader, error)

	op  byte    // the opcode of the message being read; 0 between messages
	msg *[]byte // its bytes so far; nil between messages
	ctl [maxControlPayload]byte
}

// msgBufs holds message buffers.
var msgBufs = bufPool{max: maxPooledMsg}

// maxPooledMsg bounds the buffers msgBufs keeps. It is readChunk, so that
// the buffer a connection starts a message with is no larger than what
// readPayload may hold ahead of the bytes received.
const maxPooledMsg = readChunk

// next returns the next whole text message (opText) or control frame
// (opPing, opPong, opClose), with its payload; the payload is valid until
// the next call. A frame or message that breaks the rules above is a
// *closeError; a read error is returned as it is.
func (r *messageReader) next() (op byte, payload []byte, err error) {
	r.release()
	for {
		if r.frameStart != nil {
			br, err := r.frameStart()
			if err != nil {
				return 0, nil, err
			}
			r.br = br
		}
		h, err := readHeader(r.br)
		if err != nil {
			return 0, nil, err
		}
		if h.op >= opClose { // readHeader bounds it to 125 bytes
			p, err := readPayload(r.br, h, r.ctl[:0])
			return h.op, p, err
		}
		if err := r.admit(h); err != nil {
			return 0, nil, err
		}
		if *r.msg, err = readPayload(r.br, h, *r.msg); err != nil {
			return 0, nil, err
		}
		if h.fin {
			r.op = 0
			if !utf8.Valid(*r.msg) {
				return 0, nil, &closeError{code: CloseInvalidPayload, reason: "text message is not UTF-8"}
			}
			return opText, *r.msg, nil
		}
	}
}

// admit checks the header of a data frame against the message it starts
// or continues, and starts a message for a first frame.
func (r *messageReader) admit(h frameHeader) error {
	switch {
	case h.op == opContinuation && r.op == 0:
		return protocolError("continuation frame without a message")
	case h.op != opContinuation && r.op != 0:
		return protocolError("new message inside a fragmented one")
	}
	room := r.limit
	if h.op == opContinuation {
		room -= len(*r.msg) // never negative: a message never passes the limit
	}
	switch {
	case h.length > int64(room):
		return &closeError{code: CloseMessageTooBig, reason: "message larger than the server accepts", skip: h.length}
	case h.op == opBinary:
		return &closeError{code: CloseUnsupportedData, reason: "this server reads text messages only", skip: h.length}
	}
	if h.op == opText {
		r.op, r.msg = opText, msgBufs.get()
	}
	return nil
}

// release returns the buffer of the last message, which the caller has
// handled, to msgBufs. A message still being read keeps its buffer.
func (r *messageReader) release() {
	if r.op != 0 || r.msg == nil {
		return
	}
	msgBufs.put(r.msg)
	r.msg = nil
}

// parseClose reads a close frame's payload (RFC 6455 §5.5.1, §7.4): the code
// to echo, or an error when the payload is malformed.
func parseClose(payload []byte) (code int, reason string, err error) {
	switch {
	case len(payload) == 0:
		return CloseNoStatus, "", nil
	case len(payload) == 1:
		return 0, "", protocolError("one-byte close payload")
	}
	code = int(binary.BigEndian.Uint16(payload))
	reason = string(payload[2:])
	if !validCloseCode(code) {
		return 0, "", protocolError("invalid close code")
	}
	if !utf8.ValidString(reason) {
		return 0, "", &closeError{code: CloseInvalidPayload, reason: "close reason is not UTF-8"}
	}
	return code, reason, nil
}

// validCloseCode reports whether a peer may send code (RFC 6455 §7.4.1:
// 1005, 1006 and 1015 are never sent; 1016 to 2999 are reserved).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// closePayload is a close frame's body: the code, then a reason cut to fit
// the 125-byte control frame limit without splitting a UTF-8 sequence.
func closePayload(code int, reason string) []byte {
	if code == CloseNoStatus {
		return nil
	}
	if len(reason) > maxCloseReason {
		cut := maxCloseReason - len(closeReasonTruncation)
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut] + closeReasonTruncation
	}
	b := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(b, uint16(code))
	return append(b, reason...)
}

// Server frames (RFC 6455 §5.2): FIN set, no extension bits, never masked
// (§5.1: a client closes a connection whose frames are masked), and the
// payload length in the fewest bytes that hold it: 7 bits up to 125, then
// 126 and 16 bits, then 127 and 64 bits.

// maxFrameHeader is the longest header of a server frame.
const maxFrameHeader = 2 + 8

// appendFrameHeader appends the header of a whole, unmasked frame of opcode
// op whose payload is n bytes long.
func appendFrameHeader(dst []byte, op byte, n int) []byte {
	b0 := 0x80 | op
	switch {
	case n <= 125:
		return append(dst, b0, byte(n))
	case n <= 0xffff:
		return append(dst, b0, 126, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, b0, 127), uint64(n))
}

// frameBufs holds the buffers frames are built in, so that a frame costs
// one write and no allocation.
var frameBufs = bufPool{max: maxPooledFrame}

// maxPooledFrame bounds the buffers frameBufs keeps, so that one large
// frame does not pin its buffer for the life of the process. It is also
// the most of one echo that is built before it is written (echo.go).
const maxPooledFrame = 16 << 10

// bufPool is a pool of byte buffers, each kept only while it is at most
// max bytes. It holds *[]byte: a pointer goes into an interface without an
// allocation, a slice does not.
type bufPool struct {
	pool sync.Pool
	max  int
}

// get returns an empty buffer.
func (p *bufPool) get() *[]byte {
	bp, ok := p.pool.Get().(*[]byte)
	if !ok {
		return new([]byte)
	}
	*bp = (*bp)[:0]
	return bp
}

// put gives bp back, unless it grew past max.
func (p *bufPool) put(bp *[]byte) {
	if cap(*bp) <= p.max {
		p.pool.Put(bp)
	}
}

// awaitClose reads and discards client frames until a close frame, an error
// or the read deadline, after the server sent its own close (RFC 6455
// §7.1.1: unread bytes would make the kernel reset the connection under the
// close frame). It returns the error that ended it, nil for a close frame.
func awaitClose(br *bufio.Reader) error {
	for {
		h, err := readHeader(br)
		if err != nil {
			return err
		}
		if h.op == opClose {
			return nil
		}
		if err := skipPayload(br, h.length); err != nil {
			return err
		}
	}
}

// connReader is a connection's source of frames for a messageReader. It
// holds a 4 KiB bufio.Reader, borrowed from readers, only while bytes are
// buffered in it: a silent client, which is most clients most of the time,
// costs the connection idleRead bytes of read buffer, not 4 KiB. Waiting
// (fill) reads into the small head buffer, then borrows a reader that
// serves those bytes first and reads the connection after them.
//
// Only the goroutine that reads the connection uses it.
type connReader struct {
	nc   net.Conn
	br   *bufio.Reader // borrowed; nil while idle
	head [idleRead]byte
	// pending are bytes br has yet to be served: what fill read into head,
	// or what the upgrade's reader held.
	pending []byte
	err     error // fill's read error, returned after pending
	// renew, when set, runs before the first read from nc after fill, so
	// that the rest of a frame has the deadline of a frame in progress,
	// not that of the wait.
	renew func()
	stale bool
	armed bool // the deadline of the next wait is set
}

// idleRead is the read buffer of a waiting connection: large enough for a
// typical message in one read, small next to the reader it stands in for.
const idleRead = 256

// readers holds the borrowed readers.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readChunk) }}

// adopt makes br, the reader the upgrade left (it may hold what the client
// sent right after its handshake), the start of r's bytes. An empty one
// joins readers.
func (r *connReader) adopt(br *bufio.Reader) {
	if n := br.Buffered(); n > 0 {
		r.pending, _ = br.Peek(n)
		r.borrow()
		return
	}
	br.Reset(nil)
	readers.Put(br)
}

func (r *connReader) borrow() {
	r.br = readers.Get().(*bufio.Reader)
	r.br.Reset(r)
}

// buffered returns the borrowed reader if bytes (or an error) are waiting
// in it, nil when the next read would wait for the client.
func (r *connReader) buffered() *bufio.Reader {
	if r.br != nil && (r.br.Buffered() > 0 || len(r.pending) > 0 || r.err != nil) {
		return r.br
	}
	return nil
}

// fill waits for the client's next bytes without a borrowed reader, then
// borrows one that starts with them. Call it when buffered is nil.
func (r *connReader) fill() error {
	r.release()
	n, err := r.nc.Read(r.head[:])
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	r.pending, r.err, r.stale = r.head[:n], err, true
	r.borrow()
	return nil
}

// hold returns a reader to read the rest of the connection with, never
// given back before close: for the closing handshake, which reads until the
// connection ends.
func (r *connReader) hold() *bufio.Reader {
	if r.br == nil {
		r.borrow()
	}
	return r.br
}

// release gives the borrowed reader back when it holds nothing.
func (r *connReader) release() {
	if r.br != nil && r.buffered() == nil {
		r.close()
	}
}

// close gives the borrowed reader back, whatever it holds: the connection
// is done.
func (r *connReader) close() {
	if r.br != nil {
		r.br.Reset(nil)
		readers.Put(r.br)
		r.br = nil
	}
	r.pending, r.err = nil, nil
}

// Read is the borrowed reader's source: pending bytes first, then the
// connection.
func (r *connReader) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	if err := r.err; err != nil {
		r.err = nil
		return 0, err
	}
	if r.stale && r.renew != nil {
		r.renew()
	}
	r.stale = false
	return r.nc.Read(p)
}
