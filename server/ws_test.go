package server

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"wsauth/tokens"
)

// TestCheckUpgrade: checkUpgrade refuses, before any credential is looked
// at, every request x/net/websocket would refuse only after the hijack,
// with the status a client can read (400, 405 or 426).
func TestCheckUpgrade(t *testing.T) {
	t.Parallel()
	good := func() *http.Request {
		r := httptest.NewRequest("GET", "/ws", nil)
		r.Header.Set("Connection", "keep-alive, Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		return r
	}
	for _, tc := range []struct {
		name   string
		mutate func(*http.Request)
		status int
	}{
		{"good", func(*http.Request) {}, 0},
		{"HTTP/1.0", func(r *http.Request) { r.Proto, r.ProtoMinor = "HTTP/1.0", 0 }, 400},
		{"no Upgrade", func(r *http.Request) { r.Header.Del("Upgrade") }, 426},
		{"no Connection: upgrade", func(r *http.Request) { r.Header.Set("Connection", "keep-alive") }, 426},
		{"version 8", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") }, 426},
		{"no key", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Key") }, 400},
		{"short key", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "c2hvcnQ=") }, 400},
		{"HEAD", func(r *http.Request) { r.Method = "HEAD" }, 405},
		{"POST", func(r *http.Request) { r.Method = "POST" }, 405},
		{"Host with a port x/net cannot parse", func(r *http.Request) { r.Host = "example.com:abc" }, 400},
		{"Host with a bad escape", func(r *http.Request) { r.Host = "exa%zzmple.com" }, 400},
		{"IPv6 Host", func(r *http.Request) { r.Host = "[::1]:8080" }, 0},
		{"Connection: upgrade on a second line only (x/net reads the first)", func(r *http.Request) {
			r.Header["Connection"] = []string{"keep-alive", "Upgrade"}
		}, 426},
	} {
		r := good()
		tc.mutate(r)
		err := checkUpgrade(r)
		got := 0
		if err != nil {
			got = answerFor(err).status
		}
		if got != tc.status {
			t.Errorf("%s: checkUpgrade status = %d (%v); want %d", tc.name, got, err, tc.status)
		}
	}
}

// TestUpgradeAnswerGoesWithTheFirstFrame: the 101 that completes the
// upgrade is not written alone but with the connection's first frame, in
// one write: the welcome, or, in close mode, the close frame that refuses
// the token. A write is a system call and, on loopback, a wakeup of the
// client: the handshake's costliest steps. The log line still says 101.
func TestUpgradeAnswerGoesWithTheFirstFrame(t *testing.T) {
	t.Parallel()
	alice := tokens.ValidatorFunc(func(_ context.Context, tok string) (tokens.Principal, error) {
		if tok != "good" {
			return tokens.Principal{}, tokens.ErrInvalid
		}
		return tokens.Principal{Subject: "alice", Scopes: []string{"ws"}}, nil
	})
	for _, tc := range []struct {
		name, mode, token string
		first             []byte // the first frame's start, right after the 101's blank line
	}{
		{"welcome", RejectHTTP, "good", []byte{0x81}},
		{"close mode's refusal", RejectClose, "bad", []byte{0x88, byte(2 + len("invalid, expired or revoked token")), 0x0b, 0xb8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			s := New(Config{Validator: alice, WSReject: tc.mode, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			ts := httptest.NewUnstartedServer(s)
			wl := &writesListener{Listener: ts.Listener}
			ts.Listener = wl
			ts.Start()
			defer ts.Close()

			nc, br, resp := rawHandshake(t, ts.Listener.Addr().String(), "/ws?token="+tc.token)
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("handshake answered %d; want 101", resp.StatusCode)
			}
			if head, err := br.Peek(len(tc.first)); err != nil || !bytes.Equal(head, tc.first) {
				t.Fatalf("first frame starts % x, %v; want % x", head, err, tc.first)
			}
			if got := wl.firstWrite(); !bytes.HasPrefix(got, []byte("HTTP/1.1 101 ")) ||
				!bytes.Contains(got, append([]byte("\r\n\r\n"), tc.first...)) {
				t.Errorf("the server's first write: %q; want the 101 and the first frame together", got)
			}
			nc.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}) // close 1000, mask 0
			waitForLog(t, &logs, "msg=request")
			if !strings.Contains(logs.String(), " status=101 ") {
				t.Errorf("log %q; want status=101", logs.String())
			}
		})
	}
}

// rawHandshake sends a WebSocket handshake for target to the server at
// addr, on a TCP connection of its own that closes when the test ends, and
// returns the connection, the server's answer and the reader holding what
// follows the answer.
func rawHandshake(t *testing.T, addr, target string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = nc.Write([]byte("GET " + target + " HTTP/1.1\r\nHost: " + addr + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the handshake's answer: %v", err)
	}
	resp.Body.Close()
	return nc, br, resp
}

// waitForLog waits up to 10 s for logs to hold want: a request's log line
// is written when its hijacked handler returns, which no client sees.
func waitForLog(t *testing.T, logs *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log after 10 s: %q", want, logs.String())
		}
		<-time.After(10 * time.Millisecond) // polling with a deadline
	}
}

// writesListener records the writes to the connections it accepts.
type writesListener struct {
	net.Listener
	mu     sync.Mutex
	writes [][]byte
}

func (l *writesListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &writesConn{Conn: c, l: l}, nil
}

func (l *writesListener) firstWrite() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.writes) == 0 {
		return nil
	}
	return l.writes[0]
}

type writesConn struct {
	net.Conn
	l *writesListener
}

func (c *writesConn) Write(p []byte) (int, error) {
	c.l.mu.Lock()
	c.l.writes = append(c.l.writes, bytes.Clone(p))
	c.l.mu.Unlock()
	return c.Conn.Write(p)
}
