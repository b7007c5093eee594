package server

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
)

// logRecord collects what the request's log line says. Handlers fill it
// through logRecordFrom; only the request's own goroutines touch it.
type logRecord struct {
	subject   string
	source    source
	err       error // the private cause of an error answer
	closeCode int   // a WebSocket's close code, when it had one
}

type logKey struct{}

func logRecordFrom(ctx context.Context) *logRecord {
	rl, _ := ctx.Value(logKey{}).(*logRecord)
	return rl
}

// logRequests writes one line per request: method, path, status, duration
// and, when known, subject and credential source. It logs the path alone,
// never the query string, which may hold a token or a ticket. A WebSocket's
// line is written when it closes, with the status its handshake was
// answered (101, or whatever x/net/websocket refused with after the
// hijack) and its close code.
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
// x/net/websocket type-asserts http.Hijacker and panics without it; after a
// hijack the response is written on the connection, where no wrapper sees
// it, so the status is read from the status line on its way out.
type statusWriter struct {
	http.ResponseWriter
	code     int
	hijacked bool
	line     statusLine
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
	if err != nil {
		return c, brw, err
	}
	w.hijacked = true
	w.line = statusLine{conn: c, code: &w.code}
	// net/http hands over an empty writer on the connection: nothing
	// buffered is lost.
	brw.Writer.Reset(&w.line)
	return c, brw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// status is the status sent: 200 when the handler wrote nothing, and 0
// for a hijacked connection on which no response was written.
func (w *statusWriter) status() int {
	if w.code == 0 && !w.hijacked {
		return http.StatusOK
	}
	return w.code
}

// statusLine passes writes on to a hijacked connection, and records the
// status code of the response it starts with ("HTTP/1.1 101 …").
type statusLine struct {
	conn net.Conn
	code *int
	done bool // the first write has passed
}

func (l *statusLine) Write(p []byte) (int, error) {
	if !l.done {
		l.done = true
		if len(p) >= 12 && string(p[:9]) == "HTTP/1.1 " {
			if n, err := strconv.Atoi(string(p[9:12])); err == nil {
				*l.code = n
			}
		}
	}
	return l.conn.Write(p)
}
