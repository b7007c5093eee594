package server

import (
	"bufio"
	"bytes"
	"errors"
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
