package faketokensvc

import (
	"fmt"
	"net/http"
	"strings"
)

// routes is the whole HTTP API on one screen.
func (s *Service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /introspect", s.handleIntrospect)
	mux.HandleFunc("POST /admin/tokens", s.handleIssue)
	mux.HandleFunc("POST /admin/revoke", s.handleRevoke)
	mux.HandleFunc("PUT /admin/scope", s.handleSetScope)
	mux.HandleFunc("GET /admin/faults", s.handleGetFaults)
	mux.HandleFunc("PUT /admin/faults", s.handleSetFaults)
	mux.HandleFunc("GET /admin/stats", s.handleStats)
	mux.HandleFunc("GET /healthz", handleHealthz)

	// What a real provider publishes for resource servers.
	mux.HandleFunc("GET /.well-known/openid-configuration", s.handleDiscovery)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.handleDiscovery)
	mux.HandleFunc("GET /.well-known/jwks.json", s.handleJWKS)
	mux.HandleFunc("POST /admin/rotate-keys", s.handleRotateKeys)
	mux.Handle("/", noRoute(mux))
	return mux
}

// noRoute answers, loudly, what no route above serves: a wrong URL in a client
// should fail with a message naming it, not a bare 404. A catch-all pattern
// also hides the mux's own 405s, so noRoute asks the mux which methods the
// path has and answers 405 with Allow itself.
func noRoute(mux *http.ServeMux) http.HandlerFunc {
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range methods {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/" {
				allow = append(allow, m)
			}
		}
		route := r.Method + " " + r.URL.Path
		if len(allow) == 0 {
			writeError(w, http.StatusNotFound, "not_found", "the fake token service has no route "+route)
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s: allowed methods are %s", route, strings.Join(allow, ", ")))
	}
}
