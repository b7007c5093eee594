package faketokensvc

import "net/http"

// handleDiscovery serves the metadata a resource server reads, as both
// OpenID Connect Discovery 1.0 §4 and RFC 8414 §3 place it. The endpoints
// are on the host the request came to; "issuer" is Options.Issuer, which
// must be that same URL for a client to accept the document.
func (s *Service) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	base := "http://" + r.Host
	if r.TLS != nil {
		base = "https://" + r.Host
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                 s.opts.Issuer,
		"jwks_uri":               base + "/.well-known/jwks.json",
		"introspection_endpoint": base + "/introspect",
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"id_token_signing_alg_values_supported":         Algorithms,
	})
}
