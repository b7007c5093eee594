package server

import "unicode/utf8"

// The echo is the one message a busy connection sends per message it
// reads, and the one whose size a client chooses, so it is encoded by hand:
//   - into a pooled buffer, the frame header first, without allocating;
//     json.Marshal costs the boxing of the struct, a copy of the message as
//     a string and the output slice;
//   - in pieces of at most maxPooledFrame bytes (16 KiB) when it is larger,
//     written one after the other as one frame: JSON escapes a control character as six bytes
//     (\u0001), so the echo of a 64 KiB message may be 384 KiB, and a
//     client that never reads would make the server hold all of it until
//     WriteTimeout. Written in pieces, an unread echo holds one piece.
//     encoding/json cannot do this: a frame's header needs the payload's
//     length, which echoLen works out before the first byte is encoded.
//
// appendEcho writes the bytes encoding/json writes for the same echoMsg
// with SetEscapeHTML(false): a WebSocket text frame is not HTML, and
// escaping <, > and & would make each six bytes. A fuzz test holds it to
// that.

// sendEcho sends {"type":"echo","sub":…,"data":msg}, with the session's
// subject, which the handler knows without the token being sent again.
func (c *session) sendEcho(msg []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return errCloseSent
	}
	sub := c.a.p.Subject
	n := echoLen(sub, msg)
	bp := c.frameBuf()
	b := appendFrameHeader(*bp, opText, n)
	if want := min(len(b)+n, maxPooledFrame); cap(b) < want {
		b = append(make([]byte, 0, want), b...) // grown once, to no more than it keeps
	}
	w := pieceWriter{b: b, c: c, limit: pieceLimit(len(b) + n)}
	w.echo(sub, msg)
	w.flush()
	*bp = w.b
	frameBufs.put(bp)
	return w.err
}

// echoHead and echoMid surround the subject in an echo.
const (
	echoHead = `{"type":"echo","sub":`
	echoMid  = `,"data":`
)

// echoLen is the length of the echo of msg with subject sub.
func echoLen(sub string, msg []byte) int {
	return len(echoHead) + jsonStringLen(sub) + len(echoMid) + jsonStringLen(msg) + len("}")
}

// appendEcho appends the JSON of echoMsg{Type: "echo", Sub: sub, Data: msg}.
func appendEcho(dst []byte, sub string, msg []byte) []byte {
	w := pieceWriter{b: dst}
	w.echo(sub, msg)
	return w.b
}

// pieceWriter builds JSON in b. With a limit, it keeps b within limit
// bytes: before each part that might not fit, it writes b to c as a piece
// of the frame, and starts again at b[:0]. Without one, b grows as needed.
type pieceWriter struct {
	b       []byte
	c       *session
	limit   int
	written bool  // a piece has gone out: the frame has started
	err     error // the first write error: nothing is written after it
}

// pieceLimit is the size of the pieces a frame of total bytes is written
// in: none (0) when it fits maxPooledFrame, else about equal pieces of at
// most maxPooledFrame. A last piece of a few bytes would cost a write and
// a TCP segment of its own, and a receiver with a small buffer may drop
// such slivers and stall the connection in retransmission for seconds
// (seen on loopback with a 4 KiB receive buffer).
func pieceLimit(total int) int {
	if total <= maxPooledFrame {
		return 0
	}
	const slack = minPiece * maxEscape // a piece may end that much short of its limit
	k := (total + maxPooledFrame - slack - 1) / (maxPooledFrame - slack)
	return (total+k-1)/k + slack
}

// room makes room for n more bytes in w.b.
func (w *pieceWriter) room(n int) {
	if w.limit > 0 && len(w.b)+n > w.limit {
		w.flush()
	}
}

// flush writes w.b as the next piece of the frame; c.mu is held.
func (w *pieceWriter) flush() {
	if w.err == nil {
		w.err = w.c.flushLocked(w.b, !w.written)
		w.written = true
	}
	w.b = w.b[:0]
}

func (w *pieceWriter) raw(s string) {
	w.room(len(s))
	w.b = append(w.b, s...)
}

func (w *pieceWriter) echo(sub string, msg []byte) {
	w.raw(echoHead)
	jsonString(w, sub)
	w.raw(echoMid)
	jsonString(w, msg)
	w.raw("}")
}

// maxEscape is the most bytes appendJSONBody writes per byte of input.
const maxEscape = len(`\u0000`)

// minPiece is the least input jsonString encodes at a time.
const minPiece = 64

// jsonString appends s as a JSON string (RFC 8259 §7) the way encoding/json
// does with SetEscapeHTML(false): whole without w.limit, else in pieces
// that fit it, each ending where a character starts, so that they encode
// as the whole would.
func jsonString[S ~string | ~[]byte](w *pieceWriter, s S) {
	w.raw(`"`)
	for len(s) > 0 && w.err == nil {
		n := len(s)
		if w.limit > 0 {
			w.room(minPiece * maxEscape)
			n = pieceEnd(s, (w.limit-len(w.b))/maxEscape)
		}
		w.b = appendJSONBody(w.b, s[:n])
		s = s[n:]
	}
	w.raw(`"`)
}

// pieceEnd returns where a piece of at most limit bytes of s ends: the last
// start of a character at or before limit, which is never more than
// utf8.UTFMax-1 bytes back. When none of those bytes starts a character,
// none belongs to a character that goes on past limit, and limit does.
func pieceEnd[S ~string | ~[]byte](s S, limit int) int {
	if len(s) <= limit {
		return len(s)
	}
	for n := limit; n > limit-utf8.UTFMax && n > 0; n-- {
		if utf8.RuneStart(s[n]) {
			return n
		}
	}
	return limit
}

// appendJSONBody appends s escaped as inside a JSON string: " and \ with a
// backslash, control bytes as \b \f \n \r \t or \u00XX, U+2028 and U+2029
// as escapes (JavaScript line terminators), and each byte of invalid UTF-8
// as \ufffd. jsonStringLen must agree with it.
func appendJSONBody[S ~string | ~[]byte](dst []byte, s S) []byte {
	const hex = "0123456789abcdef"
	start := 0 // s[start:i] is pending, needing no escape
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(dst, s[start:]...)
}

// jsonStringLen is the length of jsonString's output for s, quotes
// included.
func jsonStringLen[S ~string | ~[]byte](s S) int {
	n := len(`""`)
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			switch {
			case b >= 0x20 && b != '"' && b != '\\':
				n++
			case b == '"', b == '\\', b == '\b', b == '\f', b == '\n', b == '\r', b == '\t':
				n += 2
			default:
				n += maxEscape
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case r == utf8.RuneError && size == 1, r == '\u2028' || r == '\u2029':
			n += maxEscape
		default:
			n += size
		}
		i += size
	}
	return n
}
