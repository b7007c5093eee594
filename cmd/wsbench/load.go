package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The load generator: "wsbench load", a process of its own that the
// coordinator starts (pinned to the load's CPU) for each run, so that the
// client's cost never shares a runtime, a scheduler or a CPU with the server
// it measures. It prints one JSON line per result on stdout.

// loadResult is what one load run reports.
type loadResult struct {
	Ops          int64   `json:"ops"`     // handshakes or echoes completed in the run
	Seconds      float64 `json:"seconds"` // from the first start to the last completion
	Opened       int     `json:"opened,omitempty"`
	Closed       int     `json:"closed,omitempty"` // hold: closing handshakes the server answered
	Failures     int64   `json:"failures"`         // operations that did not complete
	FirstFailure string  `json:"first_failure,omitempty"`
}

// loadOptions are the flags of "wsbench load".
type loadOptions struct {
	mode        string // handshake, echo or hold
	url         string
	tokens      []string // from $WSBENCH_TOKENS: argv is visible to every user of the machine
	duration    time.Duration
	conns       int // handshake: workers; echo: connections; hold: connections
	concurrency int // hold: handshakes in flight
	timeout     time.Duration
}

func parseLoadFlags(args []string, getenv func(string) string, out io.Writer) (loadOptions, error) {
	var o loadOptions
	fs := flag.NewFlagSet("wsbench load", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.mode, "mode", "handshake", "handshake (open, read the welcome, close; repeat), echo (ping-pong text messages) or hold (open, wait for stdin to end, close)")
	fs.StringVar(&o.url, "url", "", "the server, http://127.0.0.1:port; connections go to its /ws")
	fs.DurationVar(&o.duration, "duration", time.Second, "length of a handshake or echo run")
	fs.IntVar(&o.conns, "conns", 4, "handshake: workers; echo and hold: connections")
	fs.IntVar(&o.concurrency, "concurrency", 50, "hold: handshakes in flight while opening")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "bound on one handshake, one echo and one closing handshake")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	o.tokens = splitList(getenv("WSBENCH_TOKENS"))
	u, err := url.Parse(o.url)
	switch {
	case o.mode != "handshake" && o.mode != "echo" && o.mode != "hold":
		return o, fmt.Errorf("-mode %q: want handshake, echo or hold", o.mode)
	case err != nil || u.Scheme != "http" || u.Host == "":
		return o, fmt.Errorf("-url %q: want http://host:port", o.url)
	case len(o.tokens) == 0:
		return o, errors.New("no tokens: set $WSBENCH_TOKENS (comma-separated)")
	case o.conns < 1 || o.concurrency < 1:
		return o, errors.New("-conns and -concurrency must be at least 1")
	case o.duration <= 0 || o.timeout <= 0:
		return o, errors.New("-duration and -timeout must be positive")
	}
	return o, nil
}

// runLoad is "wsbench load".
func runLoad(args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	o, err := parseLoadFlags(args, getenv, stdout)
	if err != nil {
		return err
	}
	u, _ := url.Parse(o.url)
	cl := newClient(u.Host, o.tokens, o.timeout)
	enc := json.NewEncoder(stdout)
	switch o.mode {
	case "handshake":
		return enc.Encode(cl.handshakes(o.conns, o.duration))
	case "echo":
		return enc.Encode(cl.echoes(o.conns, o.duration))
	default:
		return cl.hold(o.conns, o.concurrency, stdin, enc)
	}
}

// client is a lean RFC 6455 client for the load: requests and frames are
// built once, so that the load spends its CPU on sockets, not on itself.
type client struct {
	host    string
	reqs    [][]byte // one opening handshake per token
	timeout time.Duration

	fails atomic.Int64
	first atomic.Pointer[string]
}

// benchKey is a fixed Sec-WebSocket-Key and benchAccept its answer
// (RFC 6455 §1.3's example): a server cannot tell it from a random one.
const (
	benchKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	benchAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// mask is the masking key of every client frame (RFC 6455 §5.3: clients
// mask). A fixed key is fine for a load tool: masking protects proxies
// from scripts in browsers, and there is neither here.
var mask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// Frames the client sends: a text message for the echo runs, and a close
// with 1000 (normal closure).
var (
	echoFrame  = maskedFrame(0x1, []byte("wsbench echo payload: 32 bytes.."))
	closeFrame = maskedFrame(0x8, []byte{0x03, 0xe8})
)

func maskedFrame(op byte, payload []byte) []byte {
	f := []byte{0x80 | op, 0x80 | byte(len(payload))} // payloads here are < 126 bytes
	f = append(f, mask[:]...)
	for i, b := range payload {
		f = append(f, b^mask[i&3])
	}
	return f
}

func newClient(host string, tokens []string, timeout time.Duration) *client {
	cl := &client{host: host, timeout: timeout}
	for _, tok := range tokens {
		cl.reqs = append(cl.reqs, []byte("GET /ws?token="+url.QueryEscape(tok)+" HTTP/1.1\r\nHost: "+host+
			"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "+benchKey+"\r\n\r\n"))
	}
	return cl
}

// fail counts a failed operation and keeps the first cause.
func (cl *client) fail(err error) {
	cl.fails.Add(1)
	msg := err.Error()
	cl.first.CompareAndSwap(nil, &msg)
}

func (cl *client) result(ops int64, d time.Duration) loadResult {
	r := loadResult{Ops: ops, Seconds: d.Seconds(), Failures: cl.fails.Load()}
	if p := cl.first.Load(); p != nil {
		r.FirstFailure = *p
	}
	return r
}

// wsConn is one open WebSocket of the load.
type wsConn struct {
	nc  net.Conn
	br  *bufio.Reader
	buf []byte // the last payload read
}

// open dials, sends the opening handshake with the i-th token, checks the
// 101 and reads the welcome message.
func (cl *client) open(i int) (*wsConn, error) {
	nc, err := net.DialTimeout("tcp", cl.host, cl.timeout)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	c := &wsConn{nc: nc, br: bufio.NewReaderSize(nc, 512), buf: make([]byte, 0, 256)}
	nc.SetDeadline(time.Now().Add(cl.timeout))
	if _, err := nc.Write(cl.reqs[i%len(cl.reqs)]); err != nil {
		nc.Close()
		return nil, fmt.Errorf("write handshake: %w", err)
	}
	if err := c.readUpgrade(); err != nil {
		nc.Close()
		return nil, err
	}
	op, err := c.readFrame()
	if err != nil || op != 0x1 || !bytes.Contains(c.buf, []byte(`"type":"welcome"`)) {
		nc.Close()
		return nil, fmt.Errorf("welcome: opcode %d %.60q, %v", op, c.buf, err)
	}
	return c, nil
}

// readUpgrade reads the server's answer to the opening handshake: a 101
// with the right Sec-WebSocket-Accept (RFC 6455 §4.1).
func (c *wsConn) readUpgrade() error {
	status, accepted := "", false
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read handshake: %w", err)
		}
		s := strings.TrimRight(string(line), "\r\n")
		switch {
		case status == "":
			status = s
		case s == "":
			if !strings.HasPrefix(status, "HTTP/1.1 101 ") || !accepted {
				return fmt.Errorf("handshake answered %q (accept key right: %v)", status, accepted)
			}
			return nil
		default:
			name, value, _ := strings.Cut(s, ":")
			if strings.EqualFold(name, "Sec-WebSocket-Accept") && strings.TrimSpace(value) == benchAccept {
				accepted = true
			}
		}
	}
}

// readFrame reads one server frame into c.buf (servers do not mask).
func (c *wsConn) readFrame() (op byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return 0, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return 0, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return 0, fmt.Errorf("frame of %d bytes: larger than this tool reads", n)
	}
	c.buf = c.buf[:n]
	if cap(c.buf) < int(n) {
		c.buf = make([]byte, n)
	}
	_, err = io.ReadFull(c.br, c.buf)
	return h[0] & 0x0f, err
}

// closeProperly runs the closing handshake: a close frame with 1000, then
// frames until the server's close, then the server's end of the TCP
// connection (RFC 6455 §7.1.1: the server closes TCP first, so that the
// TIME_WAIT state is the server's). It reports whether the server answered
// the close; a server that ends the connection without answering (bare
// x/net/websocket does) still counts as closed.
func (c *wsConn) closeProperly(timeout time.Duration) (answered bool, err error) {
	defer c.nc.Close()
	c.nc.SetDeadline(time.Now().Add(timeout))
	if _, err := c.nc.Write(closeFrame); err != nil {
		return false, fmt.Errorf("write close: %w", err)
	}
	for {
		op, err := c.readFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return answered, nil
			}
			return answered, fmt.Errorf("closing: %w", err)
		}
		if op == 0x8 {
			answered = true
		}
	}
}

// handshakes runs workers that open a connection, read the welcome and
// close it properly, over and over, for d.
func (cl *client) handshakes(workers int, d time.Duration) loadResult {
	var ops atomic.Int64
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; time.Now().Before(end); i += workers {
				c, err := cl.open(i)
				if err != nil {
					cl.fail(err)
					continue
				}
				if _, err := c.closeProperly(cl.timeout); err != nil {
					cl.fail(err)
					continue
				}
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	return cl.result(ops.Load(), time.Since(start))
}

// echoes opens conns connections, then has each send a text message and
// wait for its echo, over and over, for d; then closes them.
func (cl *client) echoes(conns int, d time.Duration) loadResult {
	cs := cl.openMany(conns, conns)
	var ops atomic.Int64
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			c.nc.SetDeadline(time.Time{})
			for time.Now().Before(end) {
				c.nc.SetDeadline(time.Now().Add(cl.timeout))
				if _, err := c.nc.Write(echoFrame); err != nil {
					cl.fail(fmt.Errorf("write message: %w", err))
					return
				}
				op, err := c.readFrame()
				if err != nil || op != 0x1 || !bytes.Contains(c.buf, []byte(`"type":"echo"`)) {
					cl.fail(fmt.Errorf("echo: opcode %d %.60q, %v", op, c.buf, err))
					return
				}
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cl.closeMany(cs, conns)
	return cl.result(ops.Load(), elapsed)
}

// hold opens conns connections, reports them, waits for stdin to end, then
// closes them and reports again.
func (cl *client) hold(conns, concurrency int, stdin io.Reader, enc *json.Encoder) error {
	start := time.Now()
	cs := cl.openMany(conns, concurrency)
	r := cl.result(int64(len(cs)), time.Since(start))
	r.Opened = len(cs)
	if err := enc.Encode(r); err != nil {
		return err
	}
	io.Copy(io.Discard, stdin) // the coordinator closes it when it has measured
	start = time.Now()
	r = cl.result(0, 0)
	r.Opened = len(cs)
	r.Closed = cl.closeMany(cs, concurrency)
	r.Seconds = time.Since(start).Seconds()
	return enc.Encode(r)
}

// openMany opens n connections, concurrency at a time; failed ones are
// counted and left out.
func (cl *client) openMany(n, concurrency int) []*wsConn {
	cs := make([]*wsConn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, concurrency) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				c, err := cl.open(i)
				if err != nil {
					cl.fail(err)
					continue
				}
				c.nc.SetDeadline(time.Time{})
				cs[i] = c
			}
		})
	}
	wg.Wait()
	out := cs[:0]
	for _, c := range cs {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// closeMany closes cs properly, concurrency at a time, and returns how
// many closes the server answered.
func (cl *client) closeMany(cs []*wsConn, concurrency int) int {
	var answered atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(len(cs), concurrency) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(cs); i = int(next.Add(1) - 1) {
				ok, err := cs[i].closeProperly(cl.timeout)
				if err != nil {
					cl.fail(err)
				}
				if ok {
					answered.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(answered.Load())
}

func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
