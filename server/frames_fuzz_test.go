package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// FuzzFrames feeds hostile bytes to the frame and message reader, all at
// once and one byte per read, with a message limit the fuzzer also picks:
//   - nothing panics, whatever lengths the frames announce;
//   - what the reader delivers is exactly what expectMessages, a plain
//     decoder of the whole input, finds: each text message byte-exact,
//     each control frame in its place between fragments;
//   - no message over the limit is ever delivered, and a message whose
//     frames announce more than the limit always ends in 1009;
//   - every delivered message is valid UTF-8;
//   - readHeader refuses only with 1002 and accepts only headers RFC 6455
//     §5.2 and §5.5 allow; parseClose refuses only with 1002 or 1007 and
//     never accepts a code a peer must not send (1005, 1006, 1015,
//     reserved ranges).
func FuzzFrames(f *testing.F) {
	mask := []byte{1, 2, 3, 4}
	for _, in := range [][]byte{
		append([]byte{0x81, 0x85}, append(mask, "hello"...)...),
		append([]byte{0x88, 0x82}, append(mask, 0x03^1, 0xe8^2)...),
		append([]byte{0x88, 0x82}, append(mask, 0x03^1, 0xed^2)...),         // 1005
		append([]byte{0x88, 0x83}, append(mask, 0x03^1, 0xe8^2, 0xff^3)...), // bad UTF-8
		append([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}, mask...),      // top bit
		append([]byte{0x82, 0xfe, 0x01, 0x00}, mask...),                     // 16-bit length
		append([]byte{0x09, 0x80}, mask...),                                 // fragmented ping
		{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'},                               // unmasked
	} {
		f.Add(in, uint16(64))
	}
	cat := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	for _, tc := range []struct {
		in    []byte
		limit uint16
	}{
		// A 1-byte fragment, then a continuation announcing 2^63−1: the
		// sum wraps an int64 negative.
		{cat(frame(opText, false, "a"), wireFrame(opContinuation, true, 1<<63-1, "")), 64},
		{cat(frame(opText, false, "a"), wireFrame(opContinuation, true, 1<<63-1, "")), 65535},
		{cat(frame(opText, false, "abcd"), wireFrame(opContinuation, false, 1<<64-1, "")), 4},
		{wireFrame(opText, true, 1<<63-1, "x"), 64},
		{wireFrame(opText, true, 1<<16, "x"), 65535},
		// Fragments and control frames between them, around the limit.
		{cat(frame(opText, false, "hel"), frame(opPing, true, "p"), frame(opContinuation, false, "lo"),
			frame(opPong, true, ""), frame(opContinuation, true, " é"), frame(opClose, true, "\x03\xe8")), 16},
		{cat(frame(opText, false, "abcd"), frame(opContinuation, false, ""), frame(opContinuation, true, "e")), 4},
		{cat(frame(opText, false, "ab"), frame(opContinuation, true, "cd"), frame(opText, true, "x")), 4},
		{cat(frame(opText, false, "caf\xc3"), frame(opContinuation, true, "\xa9"), frame(opText, true, "\xff")), 64},
		{cat(frame(opBinary, false, "\x00"), frame(opContinuation, true, "\x01")), 64},
		// A 16-bit length; larger messages make each run and each
		// minimization slow, and TestReadPayloadGrowsAsBytesArrive covers
		// them.
		{cat(frame(opText, true, strings.Repeat("x", 200)), frame(opText, true, "after")), 200},
		{cat(frame(opText, true, strings.Repeat("x", 200)), frame(opText, true, "after")), 199},
	} {
		f.Add(tc.in, tc.limit)
	}
	f.Fuzz(func(t *testing.T, in []byte, limit uint16) {
		checkFirstHeader(t, in)
		want, wantCode := expectMessages(in, int(limit))
		got, code := readAll(bytes.NewReader(in), int(limit))
		if got1, code1 := readAll(iotest.OneByteReader(bytes.NewReader(in)), int(limit)); !slices.Equal(got1, got) || code1 != code {
			t.Fatalf("read one byte at a time: %q, close %d; read at once: %q, close %d", got1, code1, got, code)
		}
		for _, m := range got {
			if text, ok := strings.CutPrefix(m, "text:"); ok && (len(text) > int(limit) || !utf8.ValidString(text)) {
				t.Fatalf("delivered a %d-byte message (valid UTF-8: %v) with limit %d", len(text), utf8.ValidString(text), limit)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("delivered %q; want %q", got, want)
		}
		switch {
		case code != wantCode && wantCode == CloseMessageTooBig:
			t.Fatalf("after %q, a message over the limit (%d) ended in close %d; want 1009", got, limit, code)
		case code != wantCode:
			t.Fatalf("after %q, close %d; want %d (0: none)", got, code, wantCode)
		}
		if n := len(got); n > 0 && strings.HasPrefix(got[n-1], "close:") {
			checkClose(t, []byte(strings.TrimPrefix(got[n-1], "close:")))
		}
	})
}

// expectMessages decodes in as client frames, plainly and all at once, and
// returns what messageReader must deliver (as readAll writes it) and the
// close code it must end with (0: none, at a close frame or where the input
// ends). The rules, in the order the reader applies them at each header:
// the header itself (1002), fragment order (1002), the limit over the
// whole message (1009), binary (1003); UTF-8 (1007) once the message is
// whole.
func expectMessages(in []byte, limit int) (events []string, code int) {
	var msg []byte
	inMessage := false
	for {
		if len(in) < 2 {
			return events, 0
		}
		fin, op, masked, n := in[0]&0x80 != 0, in[0]&0x0f, in[1]&0x80 != 0, uint64(in[1]&0x7f)
		control := op >= 0x8
		if in[0]&0x70 != 0 || !masked || op >= 0x3 && op <= 0x7 || op >= 0xb || control && (!fin || n > 125) {
			return events, CloseProtocolError
		}
		size := map[uint64]int{126: 4, 127: 10}[n]
		size = max(size, 2) + 4
		if len(in) < size {
			return events, 0
		}
		switch n {
		case 126:
			n = uint64(binary.BigEndian.Uint16(in[2:]))
		case 127:
			n = binary.BigEndian.Uint64(in[2:])
		}
		if n >= 1<<63 {
			return events, CloseProtocolError
		}
		key := in[size-4 : size]
		in = in[size:]
		if !control {
			room := uint64(limit)
			if op == opContinuation {
				room -= uint64(len(msg))
			}
			switch {
			case op == opContinuation && !inMessage, op != opContinuation && inMessage:
				return events, CloseProtocolError
			case n > room:
				return events, CloseMessageTooBig
			case op == opBinary:
				return events, CloseUnsupportedData
			}
		}
		if n > uint64(len(in)) {
			return events, 0
		}
		p := make([]byte, n)
		for i := range p {
			p[i] = in[i] ^ key[i%4]
		}
		in = in[n:]
		switch {
		case op == opClose:
			return append(events, "close:"+string(p)), 0
		case control:
			events = append(events, opName[op]+string(p))
		case op == opText:
			msg, inMessage = p, true
		default:
			msg = append(msg, p...)
		}
		if !control && fin {
			if !utf8.Valid(msg) {
				return events, CloseInvalidPayload
			}
			events = append(events, "text:"+string(msg))
			msg, inMessage = nil, false
		}
	}
}

// checkFirstHeader checks readHeader on the first frame of in: it refuses
// only with 1002, and a header it accepts obeys RFC 6455 §5.2 and §5.5.
func checkFirstHeader(t *testing.T, in []byte) {
	h, err := readHeader(bufio.NewReader(bytes.NewReader(in)))
	if err != nil {
		var ce *closeError
		if errors.As(err, &ce) && ce.code != CloseProtocolError {
			t.Fatalf("readHeader refused with close %d; want 1002", ce.code)
		}
		return
	}
	switch {
	case h.length < 0:
		t.Fatalf("readHeader length = %d", h.length)
	case h.op > opBinary && h.op < opClose, h.op > opPong:
		t.Fatalf("readHeader accepted opcode %d", h.op)
	case h.op >= opClose && (!h.fin || h.length > maxControlPayload):
		t.Fatalf("readHeader accepted control frame fin=%v length=%d", h.fin, h.length)
	}
}

// checkClose checks parseClose on a close frame's payload: it refuses only
// with 1002 or 1007, never accepts a code a peer must not send, and returns
// the payload's reason.
func checkClose(t *testing.T, payload []byte) {
	code, reason, err := parseClose(payload)
	if err != nil {
		var ce *closeError
		if !errors.As(err, &ce) || (ce.code != CloseProtocolError && ce.code != CloseInvalidPayload) {
			t.Fatalf("parseClose(%x) error %v; want close 1002 or 1007", payload, err)
		}
		return
	}
	if len(payload) == 0 {
		if code != CloseNoStatus {
			t.Fatalf("parseClose(empty) = %d; want 1005", code)
		}
		return
	}
	if !validCloseCode(code) || code == 1005 || code == 1006 || code == 1015 || (code >= 1016 && code < 3000) {
		t.Fatalf("parseClose(%x) accepted code %d", payload, code)
	}
	if string(payload[2:]) != reason {
		t.Fatalf("parseClose(%x) reason %q; want the payload's", payload, reason)
	}
}
