package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"golang.org/x/net/websocket"

	"wsauth/tokens"
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
// nothing), a malformed request with 400, and 503 with Retry-After.

// wsRejection is the decision to upgrade and close at once. It travels to
// the WebSocket handler in the request's context, explicitly: the handler
// never infers it from a missing principal, so "no principal, no upgrade"
// still holds for the session path.
type wsRejection struct {
	code   int
	reason string
	cause  error // for the log line only
}

type rejectKey struct{}

func rejectionFrom(ctx context.Context) (wsRejection, bool) {
	rej, ok := ctx.Value(rejectKey{}).(wsRejection)
	return rej, ok
}

// closeRejection says whether err, from authenticate, is answered by a
// close frame in close mode, and with which code and reason. The reasons
// are fixed strings: nothing from the request.
func closeRejection(err error) (wsRejection, bool) {
	var scope *scopeError
	switch {
	case errors.Is(err, errNoCredential):
		return wsRejection{CloseUnauthorized, "missing token", err}, true
	case errors.Is(err, errTicketMalformed), errors.Is(err, errTicketForged),
		errors.Is(err, errTicketExpired), errors.Is(err, errTicketReplayed):
		return wsRejection{CloseUnauthorized, "invalid, expired or used ticket", err}, true
	case errors.Is(err, tokens.ErrInvalid):
		return wsRejection{CloseUnauthorized, "invalid, expired or revoked token", err}, true
	case errors.As(err, &scope):
		return wsRejection{CloseForbidden, "insufficient scope: token lacks " + scope.scope, err}, true
	}
	return wsRejection{}, false
}

// requireWS is require for /ws: in close mode it hands the rejections that
// closeRejection names to next as a decision in the context.
func (s *Server) requireWS(accepted source, next http.Handler) http.Handler {
	if s.cfg.WSReject != RejectClose {
		return s.require("ws", accepted, next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := s.authenticate(r, "ws", accepted)
		if err == nil {
			next.ServeHTTP(w, withAuthorized(r, a))
			return
		}
		rej, ok := closeRejection(err)
		if !ok {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), rejectKey{}, rej)))
	})
}

// rejectByClose upgrades r and closes the connection at once with rej's
// code and reason. It registers no session: the connection carries no
// principal and lives at most CloseTimeout after its close frame.
func (s *Server) rejectByClose(w http.ResponseWriter, r *http.Request, rej wsRejection) {
	rl := logRecordFrom(r.Context())
	if rl != nil {
		rl.err = rej.cause
	}
	hc := &hijackCapture{ResponseWriter: w}
	srv := websocket.Server{
		Handshake: s.rejectHandshake,
		Handler: func(ws *websocket.Conn) {
			hc.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			if err := closeCodec.Send(ws, closePayload(rej.code, rej.reason)); err != nil {
				return
			}
			if rl != nil {
				rl.closeCode = rej.code
			}
			// RFC 6455 §7.1.1: wait for the client's close, so that the
			// kernel does not reset the connection under our close frame.
			hc.conn.SetReadDeadline(time.Now().Add(s.cfg.CloseTimeout))
			awaitClose(hc.brw.Reader)
		},
	}
	srv.ServeHTTP(hc, r)
}

// rejectHandshake is the Handshake hook of a close-mode rejection. It
// upgrades only a request that carries the explicit decision, checks the
// Origin again, and chooses the subprotocol as handshake does, since a
// browser fails a handshake that answers none of the protocols it offered
// and would then see 1006, not the close code.
func (s *Server) rejectHandshake(cfg *websocket.Config, r *http.Request) error {
	_, decided := rejectionFrom(r.Context())
	return s.checkHandshake(cfg, r, decided, "rejection hook reached without a decision")
}
