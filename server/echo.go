package server

import (
	"sync"
	"unicode/utf8"

	"golang.org/x/net/websocket"
)

// The echo is the one message a busy connection sends per message it
// reads, so it is encoded by hand into a pooled buffer: json.Marshal of an
// echoMsg costs the boxing of the struct, a copy of the message as a string
// and the output slice, three allocations per message (issue 6's profile).
// appendEcho writes exactly the bytes json.Marshal(echoMsg{…}) writes; a
// fuzz test holds it to that.

// echoBufs holds *[]byte: a pointer goes into an interface without an
// allocation, a slice does not.
var echoBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledEcho bounds the buffers echoBufs keeps, so that one large
// message does not pin its buffer for the life of the process.
const maxPooledEcho = 16 << 10

// sendEcho sends {"type":"echo","sub":sub,"data":msg}.
func (c *session) sendEcho(sub string, msg []byte) error {
	bp := echoBufs.Get().(*[]byte)
	*bp = appendEcho((*bp)[:0], sub, msg)
	err := c.write(textBufCodec, bp) // Send has written the frame when it returns
	if cap(*bp) <= maxPooledEcho {
		echoBufs.Put(bp)
	}
	return err
}

// textBufCodec sends a *[]byte as one text frame.
var textBufCodec = websocket.Codec{Marshal: func(v any) ([]byte, byte, error) {
	return *v.(*[]byte), opText, nil
}}

// appendEcho appends the JSON of echoMsg{Type: "echo", Sub: sub, Data: msg}.
func appendEcho(dst []byte, sub string, msg []byte) []byte {
	dst = append(dst, `{"type":"echo","sub":`...)
	dst = appendJSONString(dst, sub)
	dst = append(dst, `,"data":`...)
	dst = appendJSONString(dst, msg)
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string (RFC 8259 §7) the way
// encoding/json writes one: <, > and & as \u003c, \u003e and \u0026 (its
// HTML-safe default), control bytes as \b \f \n \r \t or \u00XX, U+2028 and
// U+2029 as escapes (JavaScript line terminators), and each byte of invalid
// UTF-8 as \ufffd.
func appendJSONString[S ~string | ~[]byte](dst []byte, s S) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending, needing no escape
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
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
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
