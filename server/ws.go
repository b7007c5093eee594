package server

import (
	"bufio"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/websocket"
)

// upgradeRequest refuses, before any credential is looked at, requests to
// /ws that are not a WebSocket handshake this server speaks.
func (s *Server) upgradeRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkUpgrade(r); err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkUpgrade checks a WebSocket opening handshake (RFC 6455 §4.2.1) as far
// as HTTP goes, and refuses everything x/net/websocket would refuse, so
// that x/net never has to: it checks only after the connection is hijacked,
// after the credential was spent and a connection slot reserved, and can
// then only write a bare status line, followed, for a URL it cannot parse,
// by the parse error, which quotes the request URI, ?token= included. It
// also upgrades HTTP/1.0 requests, which RFC 6455 §4.1 forbids.
func checkUpgrade(r *http.Request) error {
	switch {
	case r.Method != http.MethodGet:
		// §4.1: the handshake is a GET. The "GET /ws" pattern also
		// matches HEAD, which x/net refuses with 405 after the hijack.
		return &upgradeError{status: http.StatusMethodNotAllowed, desc: "a WebSocket handshake is a GET request (RFC 6455 §4.1)",
			header: [][2]string{{"Allow", "GET"}}}
	case r.ProtoMajor != 1 || r.ProtoMinor < 1:
		return &upgradeError{status: 400, desc: "a WebSocket handshake needs HTTP/1.1 (RFC 6455 §4.1)"}
	case !headerHasToken(r.Header, "Connection", "upgrade") ||
		!strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		return &upgradeError{status: http.StatusUpgradeRequired, desc: "this route speaks only WebSocket",
			header: [][2]string{{"Connection", "Upgrade"}, {"Upgrade", "websocket"}}}
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		// §4.4: name the versions this server speaks.
		return &upgradeError{status: http.StatusUpgradeRequired, desc: "unsupported WebSocket version",
			header: [][2]string{{"Sec-WebSocket-Version", "13"}}}
	}
	// §4.2.1: the key is 16 bytes in base64, so 24 characters; decoding into
	// an array keeps the check from allocating.
	var key [18]byte
	if k := r.Header.Get("Sec-WebSocket-Key"); len(k) != 24 {
		return &upgradeError{status: 400, desc: "missing or malformed Sec-WebSocket-Key"}
	} else if n, err := base64.StdEncoding.Decode(key[:], []byte(k)); err != nil || n != 16 {
		return &upgradeError{status: 400, desc: "missing or malformed Sec-WebSocket-Key"}
	}
	// x/net builds the connection's URL from the Host header and the
	// request URI and fails the handshake when url.ParseRequestURI does (a
	// Host such as "example.com:abc" that net/http lets through). The
	// scheme does not change the outcome.
	if _, err := url.ParseRequestURI("ws://" + r.Host + r.URL.RequestURI()); err != nil {
		return &upgradeError{status: 400, desc: "the Host header is not a host[:port] a WebSocket URL can hold"}
	}
	return nil
}

// headerHasToken reports whether the first line of a comma-separated header
// holds token. RFC 9110 §5.3 lets a list span several lines, but
// x/net/websocket reads the first only: a token on a later line would pass
// here and fail there, after the hijack.
func headerHasToken(h http.Header, name, token string) bool {
	for t := range strings.SplitSeq(h.Get(name), ",") {
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

// websocket upgrades an authorized request and starts its session. By the
// time it runs, the request has passed every check in auth.go.
//
// The session runs on a goroutine of its own, and the handler returns as
// soon as the upgrade is done: net/http's goroutine, with its deep stack,
// and the request, its headers and the 4 KiB reader and writer it hijacked
// with, would otherwise live as long as the connection, idle or not.
func (s *Server) websocket() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := decisionFrom(r.Context())
		switch {
		case !ok:
			s.writeError(w, r, errors.New("websocket handler reached without a decision"))
			return
		case d.refused != nil:
			s.rejectByClose(w, r, d.refused) // close mode: reject.go
			return
		}
		sess, err := s.conns.reserve(d.authorized)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		rl := logRecordFrom(r.Context())
		if rl != nil {
			rl.holdUpgrade = true // the 101 goes out with the welcome
		}
		up := &upgrade{ResponseWriter: w}
		srv := websocket.Server{
			Handshake: s.handshake,
			Handler: func(*websocket.Conn) {
				up.guard.kept = true // x/net closes the connection when this returns
				if sess.start(up.conn, up.br, rl, s.requestIP(r)) {
					go sess.serve()
				}
			},
		}
		srv.ServeHTTP(up, r)
		if !up.guard.kept {
			s.conns.release(sess) // x/net refused the handshake
		}
	})
}

// handshake is x/net/websocket's Handshake hook: the WebSocket-specific part
// of the checks, run after the connection is hijacked. Authentication is not
// here but before the upgrade, in require, because an error from this hook
// always becomes a bare 403 that tells a client nothing. The hook keeps:
//   - "no principal, no upgrade": a request that somehow reached it without
//     one is refused, so a routing mistake fails closed;
//   - the Origin check again, as a second line of defence;
//   - the subprotocol choice: x/net/websocket fails the handshake unless at
//     most one protocol is left, and must never echo wsauth.bearer.<token>.
func (s *Server) handshake(cfg *websocket.Config, r *http.Request) error {
	d, ok := decisionFrom(r.Context())
	return s.checkHandshake(cfg, r, ok && d.refused == nil, "handshake hook reached without a principal")
}

// checkHandshake is the body of both Handshake hooks: decided says whether
// the request carries the decision the hook needs (a principal, or a
// close-mode rejection); missing is the log's cause when it does not.
func (s *Server) checkHandshake(cfg *websocket.Config, r *http.Request, decided bool, missing string) error {
	err := errOriginRefused
	if !decided {
		err = errors.New(missing)
	} else if s.originAllowed(r) {
		err = nil
	}
	if err != nil {
		if rl := logRecordFrom(r.Context()); rl != nil {
			rl.err = err // x/net writes the 403; the log reads its status line
		}
		return err
	}
	cfg.Protocol = nil
	if offersSubprotocol(r.Header) {
		cfg.Protocol = []string{subprotocol}
	}
	return nil
}

// upgrade is the ResponseWriter that x/net/websocket upgrades through. It
// keeps what the hijack hands over, so that the server can read and write
// frames itself (frames.go): the connection, and the reader holding
// whatever the client sent right after its handshake.
type upgrade struct {
	http.ResponseWriter
	conn  net.Conn
	br    *bufio.Reader
	guard closeGuard
}

func (u *upgrade) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(u.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	u.conn, u.br, u.guard.Conn = c, brw.Reader, c
	return &u.guard, brw, nil
}

// closeGuard is the connection x/net/websocket gets. x/net closes it when
// its Handler returns, which is right away once a session has taken the
// connection over (kept): from then on the session closes it.
type closeGuard struct {
	net.Conn
	kept bool
}

func (g *closeGuard) Close() error {
	if g.kept {
		return nil
	}
	return g.Conn.Close()
}
