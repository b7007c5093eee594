package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// maxRequestHead bounds a request's line and headers, the blank line that
// ends them included: 431 past it. The longest token is 4 KiB
// (tokens.MaxTokenLen), so a request carrying two, in a bearer header and
// a cookie, fits with room to spare.
const maxRequestHead = 16 << 10

// netHTTPSlop is what net/http reads beyond http.Server.MaxHeaderBytes
// before it answers 431 ("bufio slop", initialReadLimitSize in
// net/http/server.go). MaxHeaderBytes is set that much lower, so that the
// limit is the one documented.
const netHTTPSlop = 4096

// httpServer is the http.Server in front of h, with every limit set, as
// net/http's zero values wait forever and accept a 1 MB head: a client
// that dribbles its headers is dropped after ReadHeaderTimeout, a request
// head past maxRequestHead gets 431, an idle keep-alive connection is
// closed after IdleTimeout.
func httpServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second, // a handshake is one small request
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    maxRequestHead - netHTTPSlop,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// listen binds addr without TCP keep-alive, which net.Listen turns on, at
// four setsockopt calls per accepted connection, about 5 % of a WebSocket
// handshake's CPU. It would find nothing the server does not: a silent
// WebSocket is pinged after 30 s and dropped 10 s later (server.Config's
// PingInterval, WriteTimeout), and an idle HTTP connection is closed after
// IdleTimeout (60 s), before the first probe would have told anything.
func listen(ctx context.Context, addr string) (net.Listener, error) {
	return (&net.ListenConfig{KeepAlive: -1}).Listen(ctx, "tcp", addr)
}
