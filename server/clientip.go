package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Behind a reverse proxy every request arrives from the proxy's address. The
// proxy says who the client was in X-Forwarded-For and which scheme it
// spoke in X-Forwarded-Proto, but any client can send those headers too. So
// the server believes them only when the peer is one of
// Config.TrustedProxies, and from anyone else ignores them: a spoofed
// X-Forwarded-For must not move a client out of the failure throttle, and a
// spoofed X-Forwarded-Proto must not make a plain-HTTP request look secure.

// clientIP is the address a request came from, for throttling and logs: the
// peer's address, or, when the peer is a trusted proxy, the client address
// its X-Forwarded-For names.
func (s *Server) clientIP(r *http.Request) string {
	return clientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), s.cfg.TrustedProxies)
}

// requestIsTLS reports whether the client reached us over TLS: directly, or
// through a trusted proxy that terminated TLS and says so with
// X-Forwarded-Proto: https. Cookies are marked Secure when it holds.
func (s *Server) requestIsTLS(r *http.Request) bool {
	return forwardedTLS(r.TLS != nil, r.RemoteAddr, r.Header.Values("X-Forwarded-Proto"), s.cfg.TrustedProxies)
}

// clientAddr returns the client's address given the peer address (an
// http.Request's RemoteAddr), the X-Forwarded-For values and the trusted
// proxies.
//
// X-Forwarded-For is a list each proxy extends on the right with the
// address it got the request from. Only the entries appended by trusted
// proxies are facts; whatever lies left of the first untrusted entry was
// written by the client. So the list is read from the right, skipping
// trusted proxies, and the first address that is not one is the client.
// When every entry is a trusted proxy, the left-most is the client (a
// proxy's own request, a health check). An unparsable entry ends the walk
// at the last trusted hop, which is then the best address known.
func clientAddr(remoteAddr string, xff []string, trusted []netip.Prefix) string {
	peer, ok := parseAddr(remoteAddr)
	if !ok {
		host, _, err := net.SplitHostPort(remoteAddr)
		if err != nil {
			return remoteAddr
		}
		return host
	}
	if !isTrusted(peer, trusted) || len(xff) == 0 {
		return peer.String()
	}
	// RFC 9110 §5.3: several header lines are one comma-separated list.
	hops := strings.Split(strings.Join(xff, ","), ",")
	last := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseAddr(strings.TrimSpace(hops[i]))
		if !ok {
			return last.String()
		}
		if !isTrusted(a, trusted) {
			return a.String()
		}
		last = a
	}
	return last.String()
}

// forwardedTLS reports whether a request arrived over TLS: on its own
// connection (directTLS), or, from a trusted proxy, with X-Forwarded-Proto
// https. Of several values the right-most counts, the one the nearest proxy
// set.
func forwardedTLS(directTLS bool, remoteAddr string, proto []string, trusted []netip.Prefix) bool {
	if directTLS {
		return true
	}
	peer, ok := parseAddr(remoteAddr)
	if !ok || !isTrusted(peer, trusted) || len(proto) == 0 {
		return false
	}
	vals := strings.Split(strings.Join(proto, ","), ",")
	return strings.EqualFold(strings.TrimSpace(vals[len(vals)-1]), "https")
}

// parseAddr reads "ip", "ip:port" or "[ip]:port" (both forms appear in
// RemoteAddr and in X-Forwarded-For), unmapping IPv4-in-IPv6 and dropping
// zones so that prefixes match as written.
//
// It tries first the form s looks like: a failed parse allocates its
// error, and every request's RemoteAddr is "ip:port".
func parseAddr(s string) (netip.Addr, bool) {
	withPort := strings.HasPrefix(s, "[") || strings.Count(s, ":") == 1
	a, ok := parseAddrAs(s, withPort)
	if !ok {
		a, ok = parseAddrAs(s, !withPort)
	}
	if !ok {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

func parseAddrAs(s string, withPort bool) (netip.Addr, bool) {
	if withPort {
		ap, err := netip.ParseAddrPort(s)
		return ap.Addr(), err == nil
	}
	a, err := netip.ParseAddr(s)
	return a, err == nil
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads a comma-separated list of CIDR prefixes
// ("10.0.0.0/8, 127.0.0.1/32") for Config.TrustedProxies; a bare address
// stands for itself alone. An empty string means no trusted proxy, the
// default.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if a, err := netip.ParseAddr(part); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, err
		}
		out = append(out, netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Masked())
	}
	return out, nil
}

// unmappedBits keeps ::ffff:10.0.0.0/104 meaning 10.0.0.0/8, since
// addresses are unmapped before they are matched.
func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}
