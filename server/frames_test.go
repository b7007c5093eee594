package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestReadHeader(t *testing.T) {
	t.Parallel()
	mask := []byte{1, 2, 3, 4}
	for _, tc := range []struct {
		name     string
		in       []byte
		wantOp   byte
		wantLen  int64
		wantCode int // 0: no error
	}{
		{"short text", append([]byte{0x81, 0x85}, mask...), opText, 5, 0},
		{"16-bit length", append([]byte{0x82, 0xfe, 0x01, 0x00}, mask...), opBinary, 256, 0},
		{"64-bit length", append([]byte{0x81, 0xff, 0, 0, 0, 1, 0, 0, 0, 0}, mask...), opText, 1 << 32, 0},
		{"64-bit length, top bit", append([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}, mask...), 0, 0, CloseProtocolError},
		{"unmasked", []byte{0x81, 0x05}, 0, 0, CloseProtocolError},
		{"RSV1", append([]byte{0xc1, 0x85}, mask...), 0, 0, CloseProtocolError},
		{"opcode 3", append([]byte{0x83, 0x80}, mask...), 0, 0, CloseProtocolError},
		{"opcode 11", append([]byte{0x8b, 0x80}, mask...), 0, 0, CloseProtocolError},
		{"fragmented ping", append([]byte{0x09, 0x80}, mask...), 0, 0, CloseProtocolError},
		{"126-byte ping", append([]byte{0x89, 0xfe, 0, 126}, mask...), 0, 0, CloseProtocolError},
	} {
		h, err := readHeader(bufio.NewReader(bytes.NewReader(tc.in)))
		var ce *closeError
		switch {
		case tc.wantCode != 0:
			if !errors.As(err, &ce) || ce.code != tc.wantCode {
				t.Errorf("%s: error = %v; want close %d", tc.name, err, tc.wantCode)
			}
		case err != nil || h.op != tc.wantOp || h.length != tc.wantLen:
			t.Errorf("%s: = op %d len %d, %v; want op %d len %d", tc.name, h.op, h.length, err, tc.wantOp, tc.wantLen)
		}
	}
}

func TestReadPayloadUnmasks(t *testing.T) {
	t.Parallel()
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d} // RFC 6455 §5.7's example
	in := []byte{0x7f, 0x9f, 0x4d, 0x51, 0x58}
	got, err := readPayload(bufio.NewReader(bytes.NewReader(in)), frameHeader{length: 5, mask: mask}, []byte("x"))
	if err != nil || string(got) != "xHello" {
		t.Errorf("readPayload = %q, %v; want \"xHello\"", got, err)
	}
}

func TestParseClose(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		payload  []byte
		code     int
		reason   string
		wantCode int // of the error
	}{
		{"empty", nil, CloseNoStatus, "", 0},
		{"1000", []byte{0x03, 0xe8}, 1000, "", 0},
		{"3000 with reason", append([]byte{0x0b, 0xb8}, "bye"...), 3000, "bye", 0},
		{"one byte", []byte{0x03}, 0, "", CloseProtocolError},
		{"1005 is never sent", []byte{0x03, 0xed}, 0, "", CloseProtocolError},
		{"1016 reserved", []byte{0x03, 0xf8}, 0, "", CloseProtocolError},
		{"999", []byte{0x03, 0xe7}, 0, "", CloseProtocolError},
		{"5000", []byte{0x13, 0x88}, 0, "", CloseProtocolError},
		{"bad UTF-8 reason", []byte{0x03, 0xe8, 0xff}, 0, "", CloseInvalidPayload},
	} {
		code, reason, err := parseClose(tc.payload)
		var ce *closeError
		if tc.wantCode != 0 {
			if !errors.As(err, &ce) || ce.code != tc.wantCode {
				t.Errorf("%s: error = %v; want close %d", tc.name, err, tc.wantCode)
			}
			continue
		}
		if err != nil || code != tc.code || reason != tc.reason {
			t.Errorf("%s: = %d %q %v; want %d %q", tc.name, code, reason, err, tc.code, tc.reason)
		}
	}
}

func TestClosePayloadFitsAControlFrame(t *testing.T) {
	t.Parallel()
	for _, reason := range []string{"", "token expired", strings.Repeat("é", 100), strings.Repeat("a", 200)} {
		p := closePayload(CloseUnauthorized, reason)
		code, got, err := parseClose(p)
		if len(p) > maxControlPayload || err != nil || code != CloseUnauthorized || !utf8.ValidString(got) {
			t.Errorf("closePayload(3000, %d-byte reason) = %d bytes, parsed %d %q %v; want ≤125 bytes, valid", len(reason), len(p), code, got, err)
		}
		if len(reason) <= maxCloseReason && got != reason {
			t.Errorf("closePayload cut a reason that fits: %q", got)
		}
	}
	if p := closePayload(CloseNoStatus, "x"); len(p) != 0 {
		t.Errorf("closePayload(1005) = %v; want empty: 1005 means no status", p)
	}
}

// wireFrame is a client frame as RFC 6455 §5.2 lays it out, masked with a
// fixed key, announcing length n, which a lying client makes differ from
// len(payload).
func wireFrame(op byte, fin bool, n uint64, payload string) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), n)
	}
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, mask[:]...)
	for i := range len(payload) {
		b = append(b, payload[i]^mask[i&3])
	}
	return b
}

// frame is a client frame that announces its own length.
func frame(op byte, fin bool, payload string) []byte {
	return wireFrame(op, fin, uint64(len(payload)), payload)
}

// readAll runs a messageReader over src until it fails or returns a close
// frame, where the session stops reading, and returns what it delivered as
// "text:…", "ping:…", "pong:…" or "close:…", and the close code it failed
// with (0 for none: a close frame, or the input ran out).
func readAll(src io.Reader, limit int) (got []string, code int) {
	r := messageReader{br: bufio.NewReader(src), limit: limit}
	for {
		op, p, err := r.next()
		if err != nil {
			if ce, ok := errors.AsType[*closeError](err); ok {
				return got, ce.code
			}
			return got, 0
		}
		got = append(got, opName[op]+string(p))
		if op == opClose {
			return got, 0
		}
	}
}

var opName = map[byte]string{opText: "text:", opPing: "ping:", opPong: "pong:", opClose: "close:"}

func TestMessageReader(t *testing.T) {
	t.Parallel()
	cat := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	for _, tc := range []struct {
		name  string
		limit int
		in    []byte
		want  []string
		code  int // the close code that ends it; 0: the input ran out
	}{
		{"one frame", 16, frame(opText, true, "hello"), []string{"text:hello"}, 0},
		{"two messages", 16, cat(frame(opText, true, "a"), frame(opText, true, "bc")), []string{"text:a", "text:bc"}, 0},
		{"fragments", 16, cat(frame(opText, false, "hel"), frame(opContinuation, false, ""), frame(opContinuation, true, "lo")),
			[]string{"text:hello"}, 0},
		{"control frames between fragments", 16,
			cat(frame(opText, false, "he"), frame(opPing, true, "p"), frame(opContinuation, false, "ll"), frame(opPong, true, ""),
				frame(opContinuation, true, "o"), frame(opClose, true, "\x03\xe8")),
			[]string{"ping:p", "pong:", "text:hello", "close:\x03\xe8"}, 0},
		{"UTF-8 split across fragments", 16, cat(frame(opText, false, "caf\xc3"), frame(opContinuation, true, "\xa9")), []string{"text:café"}, 0},
		{"exactly the limit", 4, cat(frame(opText, false, "ab"), frame(opContinuation, true, "cd")), []string{"text:abcd"}, 0},
		{"one byte over the limit", 4, frame(opText, true, "abcde"), nil, CloseMessageTooBig},
		{"fragments over the limit", 4, cat(frame(opText, false, "abc"), frame(opContinuation, true, "de")), nil, CloseMessageTooBig},
		{"limit reached, then an empty fragment, then one more byte", 4,
			cat(frame(opText, false, "abcd"), frame(opContinuation, false, ""), frame(opContinuation, true, "e")), nil, CloseMessageTooBig},
		// 1 + (2^63−1) wraps an int64 sum negative.
		{"1 byte, then a continuation of 2^63−1", 64 << 10,
			cat(frame(opText, false, "a"), wireFrame(opContinuation, true, 1<<63-1, "")), nil, CloseMessageTooBig},
		{"2^63−1 in the first frame", 64 << 10, wireFrame(opText, true, 1<<63-1, ""), nil, CloseMessageTooBig},
		{"a message after one over the limit is not read", 4, cat(frame(opText, true, "abcde"), frame(opText, true, "ok")), nil, CloseMessageTooBig},
		{"binary", 16, frame(opBinary, true, "\x00"), nil, CloseUnsupportedData},
		{"binary fragment", 16, cat(frame(opBinary, false, "\x00"), frame(opContinuation, true, "\x01")), nil, CloseUnsupportedData},
		{"binary over the limit", 4, frame(opBinary, true, "abcde"), nil, CloseMessageTooBig},
		{"text that is not UTF-8", 16, frame(opText, true, "\xff"), nil, CloseInvalidPayload},
		{"text ending inside a character", 16, cat(frame(opText, false, "ok"), frame(opContinuation, true, "\xc3")), nil, CloseInvalidPayload},
		{"continuation without a message", 16, frame(opContinuation, true, "x"), nil, CloseProtocolError},
		{"text inside a message", 16, cat(frame(opText, false, "a"), frame(opText, true, "b")), nil, CloseProtocolError},
		{"a message, then a bad continuation", 16, cat(frame(opText, true, "a"), frame(opContinuation, true, "b")),
			[]string{"text:a"}, CloseProtocolError},
		{"fragmented ping inside a message", 16, cat(frame(opText, false, "a"), frame(opPing, false, "")), nil, CloseProtocolError},
		{"payload cut short", 16, wireFrame(opText, true, 10, "abc"), nil, 0},
	} {
		got, code := readAll(bytes.NewReader(tc.in), tc.limit)
		if !slices.Equal(got, tc.want) || code != tc.code {
			t.Errorf("%s: read %q, then close %d; want %q, then close %d (0: end of input)", tc.name, got, code, tc.want, tc.code)
		}
	}
}

// TestReadPayloadGrowsAsBytesArrive: a frame's length is the client's
// claim; the buffer grows with the bytes that arrive, at most readChunk
// ahead of them (and twice what arrived, for amortized growth), and never
// past the frame's end.
func TestReadPayloadGrowsAsBytesArrive(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		length  int64 // announced
		sent    int   // then the input ends
		wantCap int   // at most
	}{
		{"1 byte of 64 KiB", 64 << 10, 1, readChunk},
		{"10,000 bytes of 64 KiB", 64 << 10, 10_000, 2*10_000 + readChunk},
		{"all of 64 KiB", 64 << 10, 64 << 10, 64 << 10},
		{"all of 40,000", 40_000, 40_000, 40_000},
		{"1 byte of 2^63−1", 1<<63 - 1, 1, readChunk},
	} {
		in := bytes.Repeat([]byte{'x'}, tc.sent)
		got, err := readPayload(bufio.NewReader(bytes.NewReader(in)), frameHeader{length: tc.length}, nil)
		if len(got) != tc.sent || cap(got) > tc.wantCap {
			t.Errorf("%s: readPayload = %d bytes in a buffer of %d, %v; want %d bytes in at most %d",
				tc.name, len(got), cap(got), err, tc.sent, tc.wantCap)
		}
	}
}

// TestMessageReaderReleasesBuffers: a message's buffer is given back when
// the next call starts, so that a connection waiting for its next message
// holds none, and a buffer grown past maxPooledMsg is not kept at all.
func TestMessageReaderReleasesBuffers(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 64<<10)
	in := bytes.Join([][]byte{frame(opText, true, big), frame(opText, false, "sm"), frame(opContinuation, true, "all")}, nil)
	r := messageReader{br: bufio.NewReader(bytes.NewReader(in)), limit: 64 << 10}
	if _, p, err := r.next(); err != nil || len(p) != len(big) {
		t.Fatalf("first message: %d bytes, %v; want %d", len(p), err, len(big))
	}
	if _, p, err := r.next(); err != nil || string(p) != "small" {
		t.Fatalf("second message: %q, %v; want \"small\"", p, err)
	}
	if c := cap(*r.msg); c > maxPooledMsg {
		t.Errorf("after a 64 KiB message and a 5-byte one, the reader holds a buffer of %d; want at most %d", c, maxPooledMsg)
	}
	if _, _, err := r.next(); err != io.EOF {
		t.Fatalf("third call: %v; want EOF", err)
	}
	if r.msg != nil {
		t.Errorf("waiting for a message, the reader holds a buffer of %d bytes; want none", cap(*r.msg))
	}
}

// TestMessageReaderAllocs: reading a small message in one frame, the fast
// path of every echo, allocates nothing once the buffer pool is warm.
func TestMessageReaderAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers")
	}
	one := frame(opText, true, "hello, wsauth")
	src := &cycleReader{b: one}
	r := messageReader{br: bufio.NewReader(src), limit: 64 << 10}
	if allocs := testing.AllocsPerRun(1000, func() {
		if op, p, err := r.next(); err != nil || op != opText || string(p) != "hello, wsauth" {
			t.Fatalf("next = %d %q %v", op, p, err)
		}
	}); allocs != 0 {
		t.Errorf("a 13-byte message costs %v allocations; want 0", allocs)
	}
}

// cycleReader reads b over and over.
type cycleReader struct {
	b   []byte
	off int
}

func (c *cycleReader) Read(p []byte) (int, error) {
	n := copy(p, c.b[c.off:])
	c.off = (c.off + n) % len(c.b)
	return n, nil
}

// TestAppendFrameHeader holds server frame headers to RFC 6455 §5.2: FIN
// set, no reserved bits, the opcode, no mask bit, and the payload length
// in the fewest bytes: 7 bits up to 125, 126 and 16 bits up to 65535, 127
// and 64 bits above.
func TestAppendFrameHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		op   byte
		n    int
		want []byte
	}{
		{opText, 0, []byte{0x81, 0x00}},
		{opText, 1, []byte{0x81, 0x01}},
		{opText, 125, []byte{0x81, 0x7d}},
		{opText, 126, []byte{0x81, 0x7e, 0x00, 0x7e}},
		{opText, 65535, []byte{0x81, 0x7e, 0xff, 0xff}},
		{opText, 65536, []byte{0x81, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}},
		{opText, 1<<32 + 5, []byte{0x81, 0x7f, 0, 0, 0, 0x01, 0, 0, 0, 0x05}},
		{opClose, 2, []byte{0x88, 0x02}},
		{opPing, 0, []byte{0x89, 0x00}},
		{opPong, 125, []byte{0x8a, 0x7d}},
	} {
		got := appendFrameHeader([]byte("x"), tc.op, tc.n)
		if !bytes.Equal(got[1:], tc.want) || got[0] != 'x' {
			t.Errorf("appendFrameHeader(op %#x, %d) = % x; want % x after what was there", tc.op, tc.n, got[1:], tc.want)
		}
		if len(got)-1 > maxFrameHeader {
			t.Errorf("header of %d bytes is longer than maxFrameHeader (%d)", len(got)-1, maxFrameHeader)
		}
	}
}

// TestConnReaderLendsItsBuffer: a connection holds a read buffer only while
// bytes are in it. Waiting (fill), it holds none; the bytes fill brings
// come first, then the connection's; a frame that needs more bytes than
// came renews the read deadline before it reads them; and once every byte
// is used, the buffer goes back to the pool.
func TestConnReaderLendsItsBuffer(t *testing.T) {
	t.Parallel()
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	renewed := 0
	in := &connReader{nc: server, renew: func() { renewed++ }}
	errWaitHere := errors.New("wait")
	r := messageReader{limit: 64 << 10, frameStart: func() (*bufio.Reader, error) {
		br := in.buffered()
		if br == nil {
			return nil, errWaitHere
		}
		in.stale = true
		return br, nil
	}}
	send := func(b []byte) {
		go func() { client.Write(b) }()
	}
	// readMessage waits as the session does and returns the next message.
	readMessage := func(what string) string {
		t.Helper()
		for {
			op, p, err := r.next()
			switch {
			case err == errWaitHere:
				if err := in.fill(); err != nil {
					t.Fatalf("%s: fill: %v", what, err)
				}
				continue
			case err != nil || op != opText:
				t.Fatalf("%s: next = op %d, %v; want a text message", what, op, err)
			}
			return string(p)
		}
	}
	if in.br != nil || in.buffered() != nil {
		t.Fatal("a new connReader holds a reader; want none")
	}

	send(frame(opText, true, "hello"))
	if got := readMessage("small message"); got != "hello" {
		t.Fatalf("small message = %q; want \"hello\"", got)
	}
	if renewed != 0 {
		t.Errorf("a frame that came whole in the wait's read renewed the deadline %d times; want 0", renewed)
	}
	if _, _, err := r.next(); err != errWaitHere {
		t.Fatalf("next with nothing sent = %v; want the wait", err)
	}
	in.release()
	if in.br != nil {
		t.Fatal("waiting with every byte used, the connReader still holds its reader")
	}

	big := strings.Repeat("x", 3*idleRead)
	send(frame(opText, true, big))
	if got := readMessage("message larger than the wait's buffer"); got != big {
		t.Fatalf("large message: %d bytes; want %d", len(got), len(big))
	}
	if renewed != 1 {
		t.Errorf("a frame larger than the wait's read renewed the deadline %d times; want once", renewed)
	}
	if _, _, err := r.next(); err != errWaitHere {
		t.Fatalf("next after the large message = %v; want the wait", err)
	}
	in.release()
	if in.br != nil {
		t.Error("after the large message, the connReader still holds its reader")
	}
}

// TestConnReaderAdoptsBufferedBytes: bytes the client sent right after its
// handshake, left in the upgrade's reader, are read first, and an empty
// upgrade reader is not kept.
func TestConnReaderAdoptsBufferedBytes(t *testing.T) {
	t.Parallel()
	two := append(frame(opText, true, "first"), frame(opText, true, "second")...)
	up := bufio.NewReader(bytes.NewReader(two))
	up.Peek(1) // buffer them, as net/http's reader does
	in := &connReader{nc: nil}
	in.adopt(up)
	br := in.buffered()
	if br == nil || br == up {
		t.Fatalf("after adopting a reader with bytes: buffered = %p (upgrade's %p); want a reader of its own", br, up)
	}
	r := messageReader{br: br, limit: 64 << 10}
	for _, want := range []string{"first", "second"} {
		if _, p, err := r.next(); err != nil || string(p) != want {
			t.Fatalf("next = %q, %v; want %q", p, err, want)
		}
	}
	in.release()
	if in.br != nil {
		t.Error("with the adopted bytes used, the connReader still holds a reader")
	}

	empty := &connReader{}
	empty.adopt(bufio.NewReader(bytes.NewReader(nil)))
	if empty.br != nil {
		t.Error("adopting an empty reader: the connReader holds it; want none")
	}
}
