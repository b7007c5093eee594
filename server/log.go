package server

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"
)

// logRecord collects what the request's log line says. Handlers fill it
// through logRecordFrom; only the request's own goroutines touch it, and
// a WebSocket's session takes a copy when it takes the connection over.
type logRecord struct {
	start        time.Time
	method, path string
	client       string // clientIP, worked out once per request
	status       int    // the status sent; for a hijacked connection, read from its status line
	hijacked     bool
	subject      string
	source       source
	err          error // the private cause of an error answer
	closeCode    int   // a WebSocket's close code, when it had one

	// holdUpgrade asks statusLine to keep a 101 unwritten, in upgrade,
	// for the session to send with its first frame: one write instead of
	// two (ws.go).
	holdUpgrade bool
	upgrade     *[]byte // a frameBufs buffer
	// handedOff says that a session took the connection over and writes
	// the line when the connection ends.
	handedOff bool
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
// hijack) and its close code: by its session, which outlives the handler
// (ws.go), or here when the handler kept the connection to the end.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// One allocation for both: they live as long as the request.
		st := &struct {
			rl logRecord
			rw statusWriter
		}{rl: logRecord{start: s.cfg.Now(), method: r.Method, path: r.URL.Path, client: s.clientIP(r)}}
		st.rw = statusWriter{ResponseWriter: w, rl: &st.rl}
		next.ServeHTTP(&st.rw, r.WithContext(context.WithValue(r.Context(), logKey{}, &st.rl)))
		if !st.rl.handedOff {
			s.logRequest(r.Context(), &st.rl)
		}
	})
}

// logRequest writes rl's line.
func (s *Server) logRequest(ctx context.Context, rl *logRecord) {
	status := rl.status
	if status == 0 && !rl.hijacked {
		status = http.StatusOK // the handler wrote nothing
	}
	level := slog.LevelInfo
	var buf [9]slog.Attr
	attrs := append(buf[:0],
		slog.String("method", rl.method),
		slog.String("path", rl.path),
		slog.Int("status", status),
		slog.Duration("duration", s.cfg.Now().Sub(rl.start)),
		slog.String("client", rl.client))
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
	// The Record is built here, not by Logger.LogAttrs, which walks the
	// stack for the caller's location: a line the handler may show only
	// with AddSource, and which would name this function anyway.
	h := s.cfg.Logger.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	r := slog.NewRecord(time.Now(), level, "request", 0)
	r.AddAttrs(attrs...)
	h.Handle(ctx, r)
}

// takeUpgrade returns the buffer holding the 101 that statusLine held
// back, for the connection's first frame to be appended to, or an empty
// frameBufs buffer when there is none. rl may be nil.
func (rl *logRecord) takeUpgrade() *[]byte {
	if rl == nil || rl.upgrade == nil {
		return frameBufs.get()
	}
	bp := rl.upgrade
	rl.upgrade = nil
	return bp
}

// requestIP is clientIP, read from the request's log record, which works
// it out once per request.
func (s *Server) requestIP(r *http.Request) string {
	if rl := logRecordFrom(r.Context()); rl != nil {
		return rl.client
	}
	return s.clientIP(r)
}

// statusWriter records the status. It passes Hijack through, because
// x/net/websocket type-asserts http.Hijacker and panics without it; after a
// hijack the response is written on the connection, where no wrapper sees
// it, so the status is read from the status line on its way out.
type statusWriter struct {
	http.ResponseWriter
	rl   *logRecord
	line statusLine
}

func (w *statusWriter) WriteHeader(code int) {
	if w.rl.status == 0 {
		w.rl.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.rl.status == 0 {
		w.rl.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	w.rl.hijacked = true
	w.line = statusLine{conn: c, rl: w.rl}
	// net/http hands over an empty writer on the connection: nothing
	// buffered is lost.
	brw.Writer.Reset(&w.line)
	return c, brw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusLine passes writes on to a hijacked connection, and records the
// status code of the response it starts with ("HTTP/1.1 101 …"). A 101
// that the record asks to hold (holdUpgrade) it keeps instead, whole: x/net
// writes the response in one flush.
type statusLine struct {
	conn net.Conn
	rl   *logRecord
	done bool // the first write has passed
}

func (l *statusLine) Write(p []byte) (int, error) {
	if !l.done {
		l.done = true
		if len(p) >= 12 && string(p[:9]) == "HTTP/1.1 " {
			if n, err := strconv.Atoi(string(p[9:12])); err == nil {
				l.rl.status = n
			}
		}
		if l.rl.status == http.StatusSwitchingProtocols && l.rl.holdUpgrade {
			bp := frameBufs.get()
			*bp = append(*bp, p...)
			l.rl.upgrade = bp
			return len(p), nil
		}
	}
	return l.conn.Write(p)
}
