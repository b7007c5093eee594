package server

import "net/http"

// Credential sources each route accepts.
const (
	apiSources = fromBearer | fromQuery | fromCookie
	wsSources  = fromBearer | fromSubprotocol | fromQuery | fromTicket | fromCookie
	// Tickets exist to keep tokens out of URLs: one is minted for a bearer
	// header or the cookie, never for a token that is already in a URL.
	ticketSources = fromBearer | fromCookie
)

// routes is the whole API, with the scope each protected route needs
// (Config.APIScope and Config.WSScope, "api" and "ws" by default). This is
// the one place that says which scope a route needs: the scope /ws checks
// at the handshake goes with the connection (authorized.scope), and its
// refreshes and rechecks hold the connection to that same scope.
func (s *Server) routes() http.Handler {
	api, ws := s.cfg.APIScope, s.cfg.WSScope
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /api/me", s.require(api, s.sources(apiSources), handleMe()))
	mux.Handle("GET /ws", s.upgradeRequest(s.wsChecks(ws, s.websocket())))
	mux.Handle("GET /api/ws-check", s.wsChecks(ws, s.handleWSCheck()))
	mux.Handle("POST /api/ws-ticket", s.scripted(s.require(ws, s.sources(ticketSources), s.handleTicket())))
	mux.Handle("GET /{$}", s.handleDemoPage())
	mux.Handle("GET /static/", s.handleStatic())
	if s.cfg.DemoIssuer != nil {
		mux.Handle("POST /dev/login", s.scripted(s.handleLogin()))
		mux.Handle("POST /dev/logout", s.scripted(s.handleLogout()))
	}
	return mux
}

// wsChecks is /ws's checks before the upgrade, shared with GET
// /api/ws-check so that the two can never disagree: the Origin, then one
// credential from wsSources carrying the ws scope, under the failure
// throttle.
func (s *Server) wsChecks(scope string, next http.Handler) http.Handler {
	return s.checkOrigin(s.requireWS(scope, s.sources(wsSources), next))
}

// sources narrows a route's credential sources by the configuration.
func (s *Server) sources(accepted source) source {
	if s.cfg.NoQueryToken {
		accepted &^= fromQuery
	}
	return accepted
}

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// meMsg is GET /api/me's answer.
type meMsg struct {
	Sub   string   `json:"sub"`
	Scope []string `json:"scope"`
	Exp   int64    `json:"exp,omitempty"`
}

func handleMe() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := PrincipalFrom(r.Context())
		writeJSON(w, http.StatusOK, meMsg{Sub: p.Subject, Scope: p.Scopes, Exp: unixOrZero(p.Expiry)})
	})
}
