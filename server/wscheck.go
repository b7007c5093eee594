package server

import (
	"errors"
	"net/http"
)

// GET /api/ws-check tells a browser why its WebSocket handshake failed.
// new WebSocket(url) reports every refused handshake as close code 1006,
// without the status: a page cannot tell "sign in again" (401) from
// "forbidden" (403), "retry later" (429, 503) or a network failure. The
// check runs exactly /ws's checks (wsChecks: the Origin, the credential
// sources, the scope /ws needs, the failure throttle), then asks the registry
// whether it would take the connection (MaxConns, MaxConnsPerSubject,
// shutdown), and answers 204 or the JSON error /ws would have answered,
// Retry-After included. It upgrades nothing and reserves nothing.
//
// It costs what a handshake's checks cost and is throttled the same way.
// A ticket sent to it is spent, as on /ws; a browser client checks with the
// credential it mints tickets with (its cookie) or, having no way to send a
// subprotocol from fetch, with the token as a bearer header. A browser sends
// no Origin on a same-origin GET, so the check cannot see a refusal of the
// page's own origin (a proxy that rewrites Host); it answers 204 and the
// client treats the failure as transient.

// handleWSCheck is the end of the check's chain: the request passed
// wsChecks. In close mode requireWS hands a refusal over as a decision,
// which the check answers as HTTP mode would.
func (s *Server) handleWSCheck() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := decisionFrom(r.Context())
		switch {
		case !ok:
			s.writeError(w, r, errors.New("ws-check handler reached without a decision"))
			return
		case d.refused != nil:
			s.writeError(w, r, d.refused)
			return
		}
		if err := s.conns.admits(d.authorized.p.Subject); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	})
}
