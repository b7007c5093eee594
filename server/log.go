package server

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
)

// logRecord collects what the request's log line says. Handlers fill it
// through logRecordFrom; only the request's own goroutines touch it.
type logRecord struct {
	subject   string
	source    source
	err       error // the private cause of an error answer
	closeCode int   // a WebSocket's close code, when it had one
	status    int   // the status written after a hijack, which no wrapper sees
}

type logKey struct{}

func logRecordFrom(ctx context.Context) *logRecord {
	rl, _ := ctx.Value(logKey{}).(*logRecord)
	return rl
}

// logRequests writes one line per request: method, path, status, duration
// and, when known, subject and credential source. It logs the path alone,
// never the query string, which may hold a token or a ticket. A WebSocket's
// line is written when it closes, with status 101 and its close code.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.cfg.Now()
		// One allocation for both: they live as long as the request.
		st := &struct {
			rl logRecord
			rw statusWriter
		}{rw: statusWriter{ResponseWriter: w}}
		rl, rw := &st.rl, &st.rw
		next.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), logKey{}, rl)))

		status := rw.status()
		if rl.status != 0 {
			status = rl.status
		}
		level := slog.LevelInfo
		attrs := make([]slog.Attr, 0, 8)
		attrs = append(attrs,
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Duration("duration", s.cfg.Now().Sub(start)),
			slog.String("client", s.clientIP(r)))
		if rl.subject != "" {
			attrs = append(attrs, slog.String("sub", rl.subject))
		}
		if rl.source != 0 {
			attrs = append(attrs, slog.String("credential", rl.source.String()))
		}
		if rl.closeCode != 0 {
			attrs = append(attrs, slog.Int("close_code", rl.closeCode))
		}
		if rl.err != nil {
			attrs = append(attrs, slog.String("cause", rl.err.Error()))
			if status >= 500 {
				level = slog.LevelWarn
			}
		}
		s.cfg.Logger.LogAttrs(r.Context(), level, "request", attrs...)
	})
}

// statusWriter records the status. It passes Hijack through, because
// x/net/websocket type-asserts http.Hijacker and panics without it, and
// records 101 when the connection is hijacked: nothing after that is
// visible to a wrapper.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.code == 0 {
		w.code = http.StatusSwitchingProtocols
	}
	return c, brw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
