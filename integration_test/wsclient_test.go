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
	"maps"
	"math"
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

// bearer is the header that carries tok as a bearer token.
func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// way is how a client carries a token.
type way struct {
	name   string
	wsOnly bool
	apply  func(path, token string, h http.Header) string // returns the path to request
}

// ways are the credential ways a client can carry a token.
var ways = []way{
	{"bearer", false, func(p, tok string, h http.Header) string { h.Set("Authorization", "Bearer "+tok); return p }},
	{"cookie", false, func(p, tok string, h http.Header) string { h.Set("Cookie", "token="+tok); return p }},
	{"query", false, func(p, tok string, h http.Header) string { return p + "?token=" + url.QueryEscape(tok) }},
	{"subprotocol", true, func(p, tok string, h http.Header) string {
		h.Set("Sec-WebSocket-Protocol", "wsauth.v1, wsauth.bearer."+tok)
		return p
	}},
}

// rawExchange writes raw to addr and reads one HTTP response. Writing runs
// beside reading, so that a server that answers and hangs up before it has
// read everything (431) is still heard.
func rawExchange(t testing.TB, addr, raw string) (*http.Response, string) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(nc, raw)
	var req *http.Request // a GET, to ReadResponse
	if strings.HasPrefix(raw, "HEAD ") {
		req = &http.Request{Method: "HEAD"} // its answer has a Content-Length and no body
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), req)
	if err != nil {
		t.Fatalf("reading the answer to %.60q…: %v", raw, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(body)
}

// tokenCookie returns the Set-Cookie of the token cookie in h.
func tokenCookie(t *testing.T, h http.Header) *http.Cookie {
	t.Helper()
	resp := http.Response{Header: h}
	for _, c := range resp.Cookies() {
		if c.Name == "token" {
			return c
		}
	}
	t.Fatalf("no token cookie in Set-Cookie %q", h.Values("Set-Cookie"))
	return nil
}

// errorCode is the "error" of a JSON error body.
func errorCode(body string) string {
	var b struct {
		Error string `json:"error"`
	}
	json.Unmarshal([]byte(body), &b)
	return b.Error
}

// openWS opens a WebSocket with tok as a bearer token and reads the welcome.
func openWS(t testing.TB, e *env, tok string) (*wsConn, map[string]any) {
	t.Helper()
	c, resp, body, err := e.dialer.Dial(e.URL+"/ws", http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	if c == nil {
		t.Fatalf("dial /ws: status %d %s; want 101", resp.StatusCode, body)
	}
	t.Cleanup(func() { c.nc.Close() })
	m, err := c.ReadJSON(5 * time.Second)
	if err != nil || m["type"] != "welcome" {
		t.Fatalf("first message = %v, %v; want the welcome", m, err)
	}
	return c, m
}

// expOf is the "exp" of a welcome or refreshed message.
func expOf(t testing.TB, m map[string]any) time.Time {
	t.Helper()
	exp, ok := m["exp"].(float64)
	if !ok {
		t.Fatalf("message %v has no exp", m)
	}
	return time.Unix(int64(exp), 0)
}

// expectEcho sends data and checks that the server echoes it.
func expectEcho(t testing.TB, c *wsConn, data string) {
	t.Helper()
	if err := c.WriteText(data); err != nil {
		t.Fatalf("sending %.20q: %v", data, err)
	}
	m, err := c.ReadJSON(5 * time.Second)
	if err != nil {
		t.Fatalf("reading the echo of %.20q: %v", data, err)
	}
	if m["type"] != "echo" || m["data"] != data {
		t.Fatalf("answer to %.20q = %.200v; want an echo of it", data, m)
	}
}

// expectMsg sends msg and checks that the answer is exactly want.
func expectMsg(t testing.TB, c *wsConn, msg string, want map[string]any) {
	t.Helper()
	if err := c.WriteText(msg); err != nil {
		t.Fatalf("sending %s: %v", msg, err)
	}
	m, err := c.ReadJSON(5 * time.Second)
	if err != nil {
		t.Fatalf("reading the answer to %.40s: %v", msg, err)
	}
	if !maps.Equal(m, want) {
		t.Fatalf("answer to %.40s = %v; want %v", msg, m, want)
	}
}

// refreshMsg is the in-band refresh message for tok.
func refreshMsg(tok string) string {
	b, _ := json.Marshal(map[string]string{"type": "refresh", "token": tok})
	return string(b)
}

// expectRefreshed sends msg, a refresh, and checks that the answer is
// refreshed with the exp of a token expiring at exp, and its expires_in:
// the whole seconds left until that exp by now, the server's clock.
func expectRefreshed(t testing.TB, c *wsConn, msg string, exp time.Time, now func() time.Time) {
	t.Helper()
	exp = time.Unix(exp.Unix(), 0) // exp goes over the wire in whole seconds
	left := exp.Sub(now())         // before the server's now: at least what it counts
	if err := c.WriteText(msg); err != nil {
		t.Fatalf("sending a refresh: %v", err)
	}
	m, err := c.ReadJSON(5 * time.Second)
	if err != nil {
		t.Fatalf("reading the answer to a refresh: %v", err)
	}
	in, _ := m["expires_in"].(float64)
	if m["type"] != "refreshed" || m["exp"] != float64(exp.Unix()) || len(m) != 3 ||
		in > math.Floor(left.Seconds()) || in < math.Floor((left-slack).Seconds()) {
		t.Fatalf("answer to a refresh = %v; want {type: refreshed, exp: %d, expires_in: %.0f or a little less}", m, exp.Unix(), math.Floor(left.Seconds()))
	}
}

// checkWelcomeAndEcho reads the welcome, checks that it names sub, sends
// "hello", checks the echo, and closes c.
func checkWelcomeAndEcho(t *testing.T, c *wsConn, sub string) {
	t.Helper()
	m, err := c.ReadJSON(5 * time.Second)
	if err != nil {
		t.Fatalf("reading welcome: %v", err)
	}
	if m["type"] != "welcome" || m["sub"] != sub || m["exp"] == nil {
		t.Errorf("welcome = %v; want type welcome, sub %s, exp", m, sub)
	}
	if err := c.WriteText("hello"); err != nil {
		t.Fatal(err)
	}
	m, err = c.ReadJSON(5 * time.Second)
	if err != nil {
		t.Fatalf("reading echo: %v", err)
	}
	if m["type"] != "echo" || m["sub"] != sub || m["data"] != "hello" {
		t.Errorf("echo = %v; want {type:echo sub:%s data:hello}", m, sub)
	}
	c.Close()
}

// readClose reads until the server's close frame, answering it and any
// ping, and returns its code, reason and arrival time. A text message
// before it fails the test.
func readClose(t testing.TB, c *wsConn, d time.Duration) (int, string, time.Time) {
	t.Helper()
	msg, err := c.Read(d)
	var ce *wsCloseError
	if !errors.As(err, &ce) {
		t.Fatalf("waiting for a close frame: got message %.100q, error %v", msg, err)
	}
	return ce.Code, ce.Reason, time.Now()
}

// expectClose reads the server's close frame, checks its code and reason,
// and then that the server sends nothing more and closes the TCP
// connection: one close frame, never two (RFC 6455 §5.5.1).
func expectClose(t testing.TB, c *wsConn, d time.Duration, code int, reason string) time.Time {
	t.Helper()
	got, gotReason, at := readClose(t, c, d)
	if got != code || gotReason != reason {
		t.Errorf("close = %d %q; want %d %q", got, gotReason, code, reason)
	}
	expectEOF(t, c, 5*time.Second)
	return at
}

// expectEOF checks that the server closes the TCP connection within d
// without sending another frame, then closes the client's side too, as
// a client does once the server has closed.
func expectEOF(t testing.TB, c *wsConn, d time.Duration) {
	t.Helper()
	op, p, err := c.ReadFrame(d)
	c.nc.Close()
	if err == nil {
		t.Errorf("after the close frame: got frame op %d %q; want the TCP connection closed", op, p)
	} else if !errors.Is(err, io.EOF) {
		t.Errorf("after the close frame: %v; want EOF", err)
	}
}

// writeRaw sends bytes as they are: for frames no honest client sends.
func writeRaw(t testing.TB, c *wsConn, b []byte) {
	t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		t.Fatalf("writing raw bytes: %v", err)
	}
}

// isTimeout reports whether err is a deadline that passed.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// The WWW-Authenticate challenges of a 401 without and with a token, and of
// a 403 for a lacking scope.
const (
	challengeNone    = `Bearer realm="wsauth"`
	challengeInvalid = `Bearer realm="wsauth", error="invalid_token"`
)

func challengeScope(scope string) string {
	return `Bearer realm="wsauth", error="insufficient_scope", scope="` + scope + `"`
}

// checkMe checks that GET /api/me answered 200 for sub with the scopes api
// and ws and an expiry in the future.
func checkMe(t *testing.T, status int, body, sub string) {
	t.Helper()
	if status != 200 {
		t.Fatalf("GET /api/me: status = %d (%s); want 200", status, body)
	}
	var me struct {
		Sub   string   `json:"sub"`
		Scope []string `json:"scope"`
		Exp   int64    `json:"exp"`
	}
	if err := json.Unmarshal([]byte(body), &me); err != nil {
		t.Fatalf("GET /api/me body %q: %v", body, err)
	}
	if me.Sub != sub || strings.Join(me.Scope, " ") != "api ws" || me.Exp < time.Now().Unix() {
		t.Errorf("GET /api/me = %+v; want sub %s, scope [api ws], exp in the future", me, sub)
	}
}

// checkRefusal checks the answer to a refused request: its status, its
// challenge, a JSON error body with a description, and no token in it. It
// reports whether the answer was readable. A bare one (a 4xx and nothing
// that says why, as x/net/websocket's Handshake hook writes) fails the test
// in one error; inside TestConformance it counts instead toward its
// capability's verdict, refused-unreadably (conformance_test.go).
func checkRefusal(t *testing.T, what string, status int, h http.Header, body string, wantStatus int, wantChallenge, wantErr, tok string) bool {
	t.Helper()
	if bareRefusal(status, h, body) {
		refusedUnreadably(t, fmt.Sprintf("%s: a bare %d; want %d with a JSON error %q (and WWW-Authenticate %q)", what, status, wantStatus, wantErr, wantChallenge))
		return false
	}
	if status != wantStatus {
		t.Errorf("%s: status = %d; want %d", what, status, wantStatus)
	}
	if got := h.Get("WWW-Authenticate"); got != wantChallenge {
		t.Errorf("%s: WWW-Authenticate = %q; want %q", what, got, wantChallenge)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type = %q; want application/json", what, ct)
	}
	var b struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil || b.Error != wantErr || b.Description == "" {
		t.Errorf("%s: body = %q; want {\"error\":%q, \"error_description\":…}", what, body, wantErr)
	}
	if tok != "" && strings.Contains(body, tok) {
		t.Errorf("%s: body contains the token", what)
	}
	return true
}

// bareRefusal reports whether a refusal says nothing but its 4xx status: no
// challenge and no JSON error.
func bareRefusal(status int, h http.Header, body string) bool {
	var b struct {
		Error string `json:"error"`
	}
	return status >= 400 && status < 500 && h.Get("WWW-Authenticate") == "" &&
		(json.Unmarshal([]byte(body), &b) != nil || b.Error == "")
}
