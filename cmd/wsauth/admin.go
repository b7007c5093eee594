package main

import (
	"expvar"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"wsauth/server"
)

// startAdmin serves GET /debug/vars on addr: the process's memory
// statistics and a "wsauth" object with the server's figures, for load
// tools and dashboards. It is off unless -admin-addr is given.
//
// It never shows a secret: of expvar's variables it serves memstats only,
// not cmdline (a flag may hold one; the environment is never published).
// And it answers only requests addressed to it: a web page can point a
// name it controls at 127.0.0.1 (DNS rebinding) and have a browser read
// the answer, but the browser then sends that name as Host, and is
// answered 421. It has no authentication: bind it to loopback or a private
// interface only.
func startAdmin(addr string, srv *server.Server, logger *slog.Logger) (stop func(), err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-admin-addr: %w", err)
	}
	if ip, err := netip.ParseAddr(host); host == "" || err == nil && ip.IsUnspecified() {
		return nil, fmt.Errorf("-admin-addr %s: name the one address it listens on, e.g. 127.0.0.1:6060; "+
			"it answers only requests addressed to that", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	hosts := []string{ln.Addr().String(), net.JoinHostPort(host, port)} // 127.0.0.1:6060, or localhost:6060 too
	mux := http.NewServeMux()
	mux.Handle("GET /debug/vars", adminVars(srv))
	hs := &http.Server{
		Handler:           onlyHosts(hosts, mux),
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    maxRequestHead - netHTTPSlop,
	}
	go hs.Serve(ln)
	logger.Info("wsauth admin listening", "url", "http://"+ln.Addr().String()+"/debug/vars")
	return func() { hs.Close() }, nil
}

// onlyHosts answers 421 Misdirected Request (RFC 9110 §15.5.20) to a
// request whose Host is none of hosts.
func onlyHosts(hosts []string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !slices.ContainsFunc(hosts, func(host string) bool { return strings.EqualFold(host, r.Host) }) {
			http.Error(w, "misdirected request: address the admin listener by its own host:port", http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// adminVars writes memstats, as expvar.Handler does, and "wsauth". The
// server's figures are not expvar.Publish'ed: Publish is process-global
// and panics on a second server in one process, as in tests.
func adminVars(srv *server.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "{\n%q: %s,\n", "memstats", expvar.Get("memstats"))
		fmt.Fprintf(w, "%q: {\"open_conns\": %s, \"goroutines\": %s}\n}\n", "wsauth",
			strconv.Itoa(srv.OpenConns()), strconv.Itoa(runtime.NumGoroutine()))
	})
}
