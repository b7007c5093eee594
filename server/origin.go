package server

import (
	"net/http"
	"net/url"
	"strings"
)

// originPolicy decides which pages may open a WebSocket.
//
// RFC 6455 §10.2: browsers send Origin on the upgrade request, and they send
// cookies with it whatever page asks. A server that authenticates WebSockets
// by cookie must therefore refuse foreign origins, or any site a user visits
// can act as that user (cross-site WebSocket hijacking).
type originPolicy struct {
	allowed map[string]bool // lower-cased "scheme://host[:port]"
}

func newOriginPolicy(origins []string) originPolicy {
	p := originPolicy{allowed: make(map[string]bool, len(origins))}
	for _, o := range origins {
		if o = strings.TrimSpace(o); o != "" {
			p.allowed[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
		}
	}
	return p
}

// allows reports whether a request with these Origin header values (nil
// when absent) to a server reached as host may open a WebSocket; secure
// says the server knows the client used TLS (requestIsTLS):
//   - no Origin: allowed, it is not a browser (browsers always send one);
//   - host[:port] equal to host, case-insensitively: allowed, whatever the
//     scheme when the server cannot tell which one the client used (a
//     TLS-terminating proxy it does not trust, as in gorilla/websocket and
//     coder/websocket), but only https when it knows the client used TLS:
//     a plain-http page of the same host is no more trustworthy than a
//     page of another site, since anyone on the network path can write it;
//   - exactly an allowed origin;
//   - anything else, including "null", an empty, unparsable or non-ASCII
//     value, one that is more than scheme://host[:port] and more than one
//     Origin header: refused.
func (p originPolicy) allows(origin []string, host string, secure bool) bool {
	switch len(origin) {
	case 0:
		return true
	case 1:
	default:
		return false
	}
	if !isASCII(origin[0]) {
		// RFC 6454 §6.2: browsers send the ASCII serialization, IDNs in
		// punycode.
		return false
	}
	u, err := url.Parse(origin[0])
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") ||
		!asciiEqualFold(strings.TrimSuffix(origin[0], "/"), u.Scheme+"://"+u.Host) {
		// An origin is scheme://host[:port] and nothing else: the value
		// must be exactly that, give or take a final slash. That refuses
		// a user, a path, a query or fragment (even an empty "?" or "#",
		// which leaves url.URL's fields empty), and anything
		// percent-encoded (url.Parse decodes %80 in a host to the byte
		// 0x80).
		return false
	}
	if asciiEqualFold(u.Host, host) && (!secure || u.Scheme == "https") {
		return true
	}
	return p.allowed[strings.ToLower(u.Scheme+"://"+u.Host)]
}

// originAllowed is the origin policy's decision for r. The scheme of the
// same-host rule is checked when the server knows the client used TLS: it
// serves TLS itself, or a trusted proxy says X-Forwarded-Proto: https
// (clientip.go). Behind a proxy it does not trust, it cannot know, and an
// http page of the same host passes; HSTS keeps browsers from loading one
// (docs/SECURITY.md).
func (s *Server) originAllowed(r *http.Request) bool {
	return s.origins.allows(originOf(r), r.Host, s.requestIsTLS(r))
}

// originOf returns the Origin header values of r, nil when it has none.
func originOf(r *http.Request) []string {
	return r.Header.Values("Origin")
}

// asciiEqualFold reports whether a and b are equal under ASCII case
// folding. strings.EqualFold folds Unicode: it takes any two invalid UTF-8
// bytes for equal (both decode to U+FFFD) and "k" for the Kelvin sign, and
// a host name is compared byte for byte, ignoring only ASCII case.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
