package server

import (
	"net"
	"net/http"
)

// clientIP is the address a request came from, for throttling and logs.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
