package server

import (
	"net/http"
	"time"

	"golang.org/x/net/websocket"
)

// Close-mode rejection (Config.WSReject = "close").
//
// A browser cannot read the status of a refused handshake: new
// WebSocket(url) reports every refusal as close code 1006 with no reason,
// so a page cannot tell "sign in again" from "server down". In close mode,
// /ws answers a missing or invalid token by completing the upgrade and
// closing at once with 3000, and a lacking scope with 3003, the reason
// saying which, before any application message.
//
// The trade-off: every such request costs an upgrade, a goroutine and up to
// CloseTimeout waiting for the client's close, where HTTP mode writes one
// small response; and a client that ignores close codes may read the 101 as
// success. Everything else stays HTTP in both modes: a foreign Origin is
// refused with 403 before the upgrade (a hijacking page must learn
// nothing), a malformed request with 400, and 429 and 503 with
// Retry-After.

// requireWS is require for /ws: in close mode it hands the refusals that
// answer by a close frame (answer.refusesByClose) to next, as the request's
// decision.
func (s *Server) requireWS(scope string, accepted source, next http.Handler) http.Handler {
	if s.cfg.WSReject != RejectClose {
		return s.require(scope, accepted, next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := s.authenticate(r, scope, accepted)
		if err == nil {
			next.ServeHTTP(w, withDecision(r, decision{authorized: a}))
			return
		}
		if !answerFor(err).refusesByClose() {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, withDecision(r, decision{refused: err}))
	})
}

// rejectByClose upgrades r and closes the connection at once with the
// close code and reason of refused's answer. It registers no session: the
// connection carries no principal and lives at most CloseTimeout after its
// close frame.
func (s *Server) rejectByClose(w http.ResponseWriter, r *http.Request, refused error) {
	a := answerFor(refused)
	rl := logRecordFrom(r.Context())
	if rl != nil {
		rl.err = refused
		rl.holdUpgrade = true // the 101 goes out with the close frame
	}
	up := &upgrade{ResponseWriter: w}
	srv := websocket.Server{
		Handshake: s.rejectHandshake,
		Handler: func(*websocket.Conn) {
			bp := rl.takeUpgrade()
			p := closePayload(a.closeCode, a.closeReason)
			*bp = append(appendFrameHeader(*bp, opClose, len(p)), p...)
			up.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			_, err := up.conn.Write(*bp)
			frameBufs.put(bp)
			if err != nil {
				return
			}
			if rl != nil {
				rl.closeCode = a.closeCode
			}
			// RFC 6455 §7.1.1: wait for the client's close, so that the
			// kernel does not reset the connection under our close frame.
			up.conn.SetReadDeadline(time.Now().Add(s.cfg.CloseTimeout))
			awaitClose(up.br)
		},
	}
	srv.ServeHTTP(up, r)
}

// rejectHandshake is the Handshake hook of a close-mode rejection. It
// upgrades only a request whose decision is a refusal, checks the Origin
// again, and chooses the subprotocol as handshake does, since a browser
// fails a handshake that answers none of the protocols it offered and would
// then see 1006, not the close code.
func (s *Server) rejectHandshake(cfg *websocket.Config, r *http.Request) error {
	d, ok := decisionFrom(r.Context())
	return s.checkHandshake(cfg, r, ok && d.refused != nil, "rejection hook reached without a refusal")
}
