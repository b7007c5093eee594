package integration_test

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// wsConn is a minimal RFC 6455 client written for these tests: unlike
// golang.org/x/net/websocket's client it shows close codes and reasons, and
// it can send what a hostile client sends. It is independent of the
// server's own frame code, so the two check each other.
type wsConn struct {
	nc       net.Conn
	br       *bufio.Reader
	Protocol string // the subprotocol the server chose
}

// wsCloseError is a close frame received from the server.
type wsCloseError struct {
	Code   int
	Reason string
}

func (e *wsCloseError) Error() string { return fmt.Sprintf("closed %d %q", e.Code, e.Reason) }

// wsDialer opens WebSocket connections to one server.
type wsDialer struct {
	TLS   *tls.Config  // for https servers
	Local *net.TCPAddr // the address to dial from; nil: any
}

// Dial performs the opening handshake. A refusal is returned as the HTTP
// response, with its body read into the returned string, and a nil conn.
func (d wsDialer) Dial(rawURL string, h http.Header) (*wsConn, *http.Response, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, "", err
	}
	var nc net.Conn
	nd := &net.Dialer{LocalAddr: d.Local}
	if d.Local == nil {
		nd.LocalAddr = nil // a nil *net.TCPAddr in the interface is not nil
	}
	if u.Scheme == "https" || u.Scheme == "wss" {
		nc, err = tls.DialWithDialer(nd, "tcp", u.Host, d.TLS)
	} else {
		nc, err = nd.Dial("tcp", u.Host)
	}
	if err != nil {
		return nil, nil, "", err
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	keyBytes := make([]byte, 16)
	rand.Read(keyBytes)
	key := base64.StdEncoding.EncodeToString(keyBytes)
	req := &http.Request{Method: "GET", URL: &url.URL{Scheme: "http", Host: u.Host, Path: u.Path, RawQuery: u.RawQuery},
		Host: u.Host, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", key)
	for k, vs := range h {
		req.Header.Del(k)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if err := req.Write(nc); err != nil {
		nc.Close()
		return nil, nil, "", err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		nc.Close()
		return nil, nil, "", err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		nc.Close()
		return nil, resp, string(body), nil
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != base64.StdEncoding.EncodeToString(sum[:]) {
		nc.Close()
		return nil, resp, "", fmt.Errorf("bad Sec-WebSocket-Accept %q", got)
	}
	nc.SetDeadline(time.Time{})
	return &wsConn{nc: nc, br: br, Protocol: resp.Header.Get("Sec-WebSocket-Protocol")}, resp, "", nil
}

// WriteFrame sends one masked frame.
func (c *wsConn) WriteFrame(op byte, fin bool, payload []byte) error {
	var hdr []byte
	b0 := op
	if fin {
		b0 |= 0x80
	}
	hdr = append(hdr, b0)
	switch n := len(payload); {
	case n <= 125:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	masked := make([]byte, len(payload))
	for i := range payload {
		masked[i] = payload[i] ^ mask[i&3]
	}
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.nc.Write(append(hdr, masked...))
	return err
}

// WriteText sends a text message in one frame.
func (c *wsConn) WriteText(s string) error { return c.WriteFrame(0x1, true, []byte(s)) }

// WriteClose sends a close frame with code and reason.
func (c *wsConn) WriteClose(code int, reason string) error {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return c.WriteFrame(0x8, true, append(p, reason...))
}

// ReadFrame reads one server frame, waiting at most d.
func (c *wsConn) ReadFrame(d time.Duration) (op byte, payload []byte, err error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		return 0, nil, errors.New("server sent a masked frame")
	}
	if h[0]&0x80 == 0 {
		return 0, nil, errors.New("server sent a fragment; these tests expect none")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		io.ReadFull(c.br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		io.ReadFull(c.br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.br, payload)
	return h[0] & 0x0f, payload, err
}

// Read returns the next text message, answering pings on the way. A close
// frame comes back as *wsCloseError, after the client answered it.
func (c *wsConn) Read(d time.Duration) (string, error) {
	for {
		op, p, err := c.ReadFrame(d)
		if err != nil {
			return "", err
		}
		switch op {
		case 0x1:
			return string(p), nil
		case 0x9:
			c.WriteFrame(0xA, true, p)
		case 0xA:
		case 0x8:
			ce := &wsCloseError{Code: 1005}
			if len(p) >= 2 {
				ce.Code, ce.Reason = int(binary.BigEndian.Uint16(p)), string(p[2:])
			}
			c.WriteFrame(0x8, true, p[:min(len(p), 2)])
			return "", ce
		default:
			return "", fmt.Errorf("unexpected opcode %d", op)
		}
	}
}

// ReadJSON reads the next text message into a map.
func (c *wsConn) ReadJSON(d time.Duration) (map[string]any, error) {
	s, err := c.Read(d)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("message %q: %w", s, err)
	}
	return m, nil
}

// ExpectClose reads until the server's close frame and checks its code and
// reason (reason "" matches any).
func (c *wsConn) ExpectClose(t testing.TB, d time.Duration, code int, reason string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		_, err := c.Read(time.Until(deadline))
		var ce *wsCloseError
		if errors.As(err, &ce) {
			if ce.Code != code || (reason != "" && !strings.Contains(ce.Reason, reason)) {
				t.Errorf("close = %d %q; want %d %q", ce.Code, ce.Reason, code, reason)
			}
			return
		}
		if err != nil {
			t.Errorf("waiting for close %d %q: %v", code, reason, err)
			return
		}
	}
}

// Close closes the connection as a polite client does: close frame, then
// wait for the server to answer and drop TCP.
func (c *wsConn) Close() {
	c.WriteClose(1000, "")
	c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, c.br)
	c.nc.Close()
}
