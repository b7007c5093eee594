package integration_test

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"
	"wsauth/server"
)

// TestClosingHandshake: the server answers a client's close with the
// client's code, sends one close frame and never two, and after its own
// close waits for the client's answer, or not past CloseTimeout.
func TestClosingHandshake(t *testing.T) {
	checkNoLeaks(t)

	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"1000 with a reason", append([]byte{0x03, 0xe8}, "bye"...)},
		{"4001", []byte{0x0f, 0xa1}},
		{"no status", nil},
	} {
		t.Run("client's close "+tc.name+" is echoed", func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
			if err := c.WriteFrame(0x8, true, tc.payload); err != nil {
				t.Fatal(err)
			}
			op, p, err := c.ReadFrame(5 * time.Second)
			if err != nil || op != 0x8 || string(p[:min(len(p), 2)]) != string(tc.payload[:min(len(tc.payload), 2)]) {
				t.Fatalf("answer to close %x = op %d %x, %v; want a close frame with its code", tc.payload, op, p, err)
			}
			expectEOF(t, c, 5*time.Second)
		})
	}

	// After its close frame the server waits for the client's, up to
	// CloseTimeout, so that the frame is not lost to a reset (RFC 6455
	// §7.1.1); it closes the TCP connection as soon as the client answers.
	const closeTimeout = 1500 * time.Millisecond
	triggers := []struct {
		name string
		code int
		do   func(t *testing.T, e *env, c *wsConn, tok string)
	}{
		{"binary message", server.CloseUnsupportedData, func(t *testing.T, e *env, c *wsConn, tok string) {
			if err := c.WriteFrame(0x2, true, []byte{1, 2, 3}); err != nil {
				t.Fatal(err)
			}
		}},
		{"revocation", server.CloseUnauthorized, func(t *testing.T, e *env, c *wsConn, tok string) { e.svc.Revoke(tok) }},
	}
	for _, tr := range triggers {
		for _, answer := range []bool{true, false} {
			name := "after close on " + tr.name + ", a client that answers"
			if !answer {
				name = "after close on " + tr.name + ", a client that never answers"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, withServer(func(c *server.Config) { c.CloseTimeout, c.Recheck = closeTimeout, 100*time.Millisecond }))
				tok := e.issue("alice", time.Hour, "ws")
				c, _ := openWS(t, e, tok)
				tr.do(t, e, c, tok)
				op, p, err := c.ReadFrame(5 * time.Second)
				if err != nil || op != 0x8 || len(p) < 2 || int(binary.BigEndian.Uint16(p)) != tr.code {
					t.Fatalf("after %s: frame op %d %q, %v; want close %d", tr.name, op, p, err, tr.code)
				}
				closeAt := time.Now()
				if answer {
					if err := c.WriteFrame(0x8, true, p[:2]); err != nil {
						t.Fatal(err)
					}
				}
				expectEOF(t, c, closeTimeout+5*time.Second)
				took := time.Since(closeAt)
				switch {
				case answer && took > closeTimeout/2:
					t.Errorf("client answered the close at once, server closed TCP after %v; want at once, not after CloseTimeout %v", took, closeTimeout)
				case !answer && (took < closeTimeout/2 || took > closeTimeout+slack):
					t.Errorf("client never answered the close, server closed TCP after %v; want CloseTimeout %v", took, closeTimeout)
				}
				waitFor(t, 5*time.Second, "the server to forget the connection", func() bool { return e.srv.OpenConns() == 0 })
			})
		}
	}

	t.Run("one close frame when the client's close crosses the server's", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, withRecheck(50*time.Millisecond))
		tok := e.issue("alice", time.Hour, "ws")
		c, _ := openWS(t, e, tok)
		e.svc.Revoke(tok)
		if err := c.WriteClose(4000, "leaving"); err != nil {
			t.Fatal(err)
		}
		op, _, err := c.ReadFrame(5 * time.Second)
		if err != nil || op != 0x8 {
			t.Fatalf("after crossing closes: op %d, %v; want a close frame", op, err)
		}
		expectEOF(t, c, 5*time.Second)
	})
}

// TestBadFrames: each frame RFC 6455 forbids, or that this server does not
// speak, closes the connection with its close code (1002, 1003 or 1007).
func TestBadFrames(t *testing.T) {
	checkNoLeaks(t)
	mask := []byte{0, 0, 0, 0} // a zero mask leaves the payload as written
	masked := func(b0 byte, payload string) []byte {
		return append(append([]byte{b0, 0x80 | byte(len(payload))}, mask...), payload...)
	}
	for _, tc := range []struct {
		name  string
		bytes []byte
		code  int
		tls   bool
	}{
		{"text that is not UTF-8", masked(0x81, "ok \xff\xfe"), server.CloseInvalidPayload, false},
		{"fragments that end inside a UTF-8 sequence", append(masked(0x01, "ok"), masked(0x80, " \xc3")...), server.CloseInvalidPayload, false},
		{"binary message", masked(0x82, "\x00\x01"), server.CloseUnsupportedData, false},
		{"unmasked frame", []byte("\x81\x05hello"), server.CloseProtocolError, false},
		{"unmasked frame over TLS", []byte("\x81\x05hello"), server.CloseProtocolError, true},
		{"binary message over TLS", masked(0x82, "\x00\x01"), server.CloseUnsupportedData, true},
		{"RSV1 without an extension", masked(0xc1, "hello"), server.CloseProtocolError, false},
		{"RSV3 without an extension", masked(0x91, "hello"), server.CloseProtocolError, false},
		{"unknown data opcode 3", masked(0x83, "hello"), server.CloseProtocolError, false},
		{"unknown control opcode 11", masked(0x8b, "hello"), server.CloseProtocolError, false},
		{"continuation without a message", masked(0x80, "hello"), server.CloseProtocolError, false},
		{"text inside a fragmented message", append(masked(0x01, "a"), masked(0x81, "b")...), server.CloseProtocolError, false},
		{"fragmented ping", masked(0x09, "hi"), server.CloseProtocolError, false},
		{"close code 1005", masked(0x88, "\x03\xed"), server.CloseProtocolError, false},
		{"close reason not UTF-8", masked(0x88, "\x03\xe8\xff"), server.CloseInvalidPayload, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A long CloseTimeout: the client below answers, so the server
			// must close at once, even when the stream is garbage.
			opts := []envOption{withServer(func(c *server.Config) { c.CloseTimeout = 10 * time.Second })}
			if tc.tls {
				opts = append(opts, withTLS())
			}
			e := newEnv(t, opts...)
			c, _ := openWS(t, e, e.issue("alice", time.Hour, "ws"))
			writeRaw(t, c, tc.bytes)
			code, _, at := readClose(t, c, 5*time.Second)
			if code != tc.code {
				t.Errorf("close = %d; want %d", code, tc.code)
			}
			expectEOF(t, c, 15*time.Second)
			if d := time.Since(at); d > slack {
				t.Errorf("server closed TCP %v after the client answered its close; want at once", d)
			}
			waitFor(t, 5*time.Second, "the server to forget the connection", func() bool { return e.srv.OpenConns() == 0 })
		})
	}
}

// TestNothingHandledAfterServersClose: once the server has sent its close
// frame, it reads only to find the client's close (RFC 6455 §1.4): the
// messages a client sends meanwhile, refreshes included, reach no handler
// and cost no call to the token system, and the closing handshake still
// completes at once when the client answers.
func TestNothingHandledAfterServersClose(t *testing.T) {
	checkNoLeaks(t)
	// Recheck stays at its default (60s), so that no sweep asks the token
	// system while the test counts; the close comes from the token's
	// expiry. A long CloseTimeout shows whether the server read the
	// client's close or gave up waiting for it.
	const closeTimeout = 10 * time.Second
	e := newEnv(t, withServer(func(c *server.Config) { c.CloseTimeout = closeTimeout }))
	tok, exp := e.issueExp("alice", time.Second, "ws")
	c, _ := openWS(t, e, tok)
	var payload []byte
	for {
		op, p, err := c.ReadFrame(time.Until(exp) + slack + 5*time.Second)
		if err != nil {
			t.Fatalf("waiting for the server's close at the token's expiry: %v", err)
		}
		if op == 0x8 {
			payload = p
			break
		}
	}
	if len(payload) < 2 || binary.BigEndian.Uint16(payload) != server.CloseUnauthorized || string(payload[2:]) != "token expired" {
		t.Fatalf("server's close = %q; want 3000 \"token expired\"", payload)
	}

	before := e.svc.Introspections()
	for i := range 10 {
		fresh := e.issue("alice", time.Hour, "ws") // never seen: a refresh would ask the token system
		if err := c.WriteText(refreshMsg(fresh)); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteText(fmt.Sprintf("message %d after the close", i)); err != nil {
			t.Fatal(err)
		}
	}
	m := refreshMsg(e.issue("alice", time.Hour, "ws"))
	c.WriteFrame(0x1, false, []byte(m[:10]))
	c.WriteFrame(0x9, true, []byte("ping"))
	c.WriteFrame(0x0, true, []byte(m[10:]))
	if err := c.WriteFrame(0x8, true, payload[:2]); err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	expectEOF(t, c, closeTimeout+5*time.Second)
	if d := time.Since(answered); d > slack {
		t.Errorf("server closed TCP %v after the client answered its close; want at once, not after CloseTimeout", d)
	}
	if n := e.svc.Introspections() - before; n != 0 {
		t.Errorf("after the server's close, the client's refreshes made %d calls to the token system; want 0", n)
	}
	waitFor(t, 5*time.Second, "the connection's access-log line", func() bool {
		return e.log.logged("path=/ws", "status=101", "sub=alice", "close_code=3000")
	})
}
