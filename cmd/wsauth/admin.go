package main

import (
	"expvar"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"wsauth/server"
)

// startAdmin serves GET /debug/vars on addr: the expvar variables of the
// process (memstats, cmdline) and a "wsauth" object with the server's
// figures, for load tools and dashboards (issue 6). It is off unless
// -admin-addr is given.
//
// Warning: /debug/vars shows the command line and memory statistics and
// has no authentication. Bind it to loopback or a private interface only.
func startAdmin(addr string, srv *server.Server, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /debug/vars", adminVars(srv))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 16 << 10}
	go hs.Serve(ln)
	logger.Info("wsauth admin listening", "url", "http://"+ln.Addr().String()+"/debug/vars")
	return func() { hs.Close() }, nil
}

// adminVars writes what expvar.Handler writes, plus "wsauth". The server's
// figures are not expvar.Publish'ed: Publish is process-global and panics
// on a second server in one process, as in tests.
func adminVars(srv *server.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "{\n")
		expvar.Do(func(kv expvar.KeyValue) {
			fmt.Fprintf(w, "%q: %s,\n", kv.Key, kv.Value)
		})
		fmt.Fprintf(w, "%q: {\"open_conns\": %s, \"goroutines\": %s}\n}\n", "wsauth",
			strconv.Itoa(srv.OpenConns()), strconv.Itoa(runtime.NumGoroutine()))
	})
}
