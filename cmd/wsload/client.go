package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// conn is one WebSocket of the load: a minimal RFC 6455 client that, unlike
// golang.org/x/net/websocket's, sees the close code the server sends.
type conn struct {
	nc net.Conn
	br *bufio.Reader

	wmu  sync.Mutex // orders writes
	mask [4]byte    // per connection: a load tool needs no fresh key per frame
}

// failure is a handshake that did not open a connection, by kind.
type failure struct {
	kind string // "dial", "http 401", "handshake", "welcome", …
	err  error
}

func (f *failure) Error() string { return f.kind + ": " + f.err.Error() }

// credential ways the tool can carry a token (the ways wsauth accepts).
var credentials = map[string]func(u *url.URL, h http.Header, token string){
	"bearer": func(u *url.URL, h http.Header, tok string) { h.Set("Authorization", "Bearer "+tok) },
	"query": func(u *url.URL, h http.Header, tok string) {
		q := u.Query()
		q.Set("token", tok)
		u.RawQuery = q.Encode()
	},
	"subprotocol": func(u *url.URL, h http.Header, tok string) {
		h.Set("Sec-WebSocket-Protocol", "wsauth.v1, wsauth.bearer."+tok)
	},
	"cookie": func(u *url.URL, h http.Header, tok string) { h.Set("Cookie", "token="+tok) },
}

// dial opens a WebSocket at u (http or ws scheme) with the token carried
// by cred, and reads the server's first message, which wsauth makes a
// welcome. The whole handshake is bounded by timeout.
// A non-nil source is the local address to dial from: loopback has
// 127.0.0.0/8, and each address has its own ephemeral ports.
func dial(u *url.URL, cred, token, origin string, source net.IP, timeout time.Duration) (*conn, error) {
	u2 := *u
	h := http.Header{}
	credentials[cred](&u2, h, token)
	if origin != "" {
		h.Set("Origin", origin)
	}
	d := net.Dialer{Timeout: timeout}
	if source != nil {
		d.LocalAddr = &net.TCPAddr{IP: source}
	}
	nc, err := d.Dial("tcp", u2.Host)
	if err != nil {
		return nil, &failure{"dial", err}
	}
	nc.SetDeadline(time.Now().Add(timeout))
	var key [16]byte
	rand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n", u2.RequestURI(), u2.Host, k)
	h.Write(&b)
	b.WriteString("\r\n")
	if _, err := io.WriteString(nc, b.String()); err != nil {
		nc.Close()
		return nil, &failure{"handshake", err}
	}
	br := bufio.NewReaderSize(nc, 1024)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		nc.Close()
		return nil, &failure{"handshake", err}
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, &failure{fmt.Sprintf("http %d", resp.StatusCode), errors.New(resp.Status)}
	}
	sum := sha1.Sum([]byte(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		nc.Close()
		return nil, &failure{"handshake", errors.New("wrong Sec-WebSocket-Accept")}
	}
	c := &conn{nc: nc, br: br}
	rand.Read(c.mask[:])
	op, p, err := c.readFrame()
	switch {
	case err != nil:
		nc.Close()
		return nil, &failure{"welcome", err}
	case op != opText || !strings.Contains(string(p), `"type":"welcome"`):
		nc.Close()
		return nil, &failure{"welcome", fmt.Errorf("first frame opcode %d %.60q; want a welcome", op, p)}
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// writeFrame sends one masked frame (RFC 6455 §5.3: clients mask).
func (c *conn) writeFrame(op byte, payload []byte, timeout time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	frame := make([]byte, 0, 14+len(payload))
	frame = append(frame, 0x80|op)
	switch n := len(payload); {
	case n <= 125:
		frame = append(frame, 0x80|byte(n))
	case n < 1<<16:
		frame = append(frame, 0x80|126)
		frame = binary.BigEndian.AppendUint16(frame, uint16(n))
	default:
		frame = append(frame, 0x80|127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(n))
	}
	frame = append(frame, c.mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^c.mask[i&3])
	}
	c.nc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.nc.Write(frame)
	return err
}

// readFrame reads one server frame (servers do not mask, and wsauth does
// not fragment).
func (c *conn) readFrame() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("frame of %d bytes: larger than this tool reads", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.br, payload)
	return h[0] & 0x0f, payload, err
}

// closeCode returns a close frame's code, 1005 when it has none.
func closeCode(p []byte) int {
	if len(p) < 2 {
		return 1005
	}
	return int(binary.BigEndian.Uint16(p))
}
