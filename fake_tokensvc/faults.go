package faketokensvc

import (
	"fmt"
	"net/http"
	"time"
)

// Faults make /introspect misbehave the ways a real token system does, so
// tests can check that its client fails closed. They apply only to requests
// with valid client credentials, after the form body has been read. Latency
// comes first; then the first of HangUp, Status and Garbage that is set.
type Faults struct {
	// Latency delays every introspection. The delay ends early, and the
	// handler returns without answering, when the client goes away.
	Latency time.Duration
	// Status, if not zero, is the HTTP status of every introspection, with a
	// JSON error body. It must be 0 or in 200–599.
	Status int
	// Garbage answers 200 with a body that is not JSON.
	Garbage bool
	// HangUp writes part of the response status line, then closes the
	// connection, so that a client sees a broken connection, not a reply.
	HangUp bool
}

// SetFaults replaces the faults injected into introspection; Faults{} turns
// them all off.
func (s *Service) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Faults returns the faults currently injected into introspection.
func (s *Service) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// injectFault applies the current faults to an introspection and reports
// whether it has dealt with the request, so the handler must not answer.
func (s *Service) injectFault(w http.ResponseWriter, r *http.Request) bool {
	f := s.Faults()
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true
		}
	}
	switch {
	case f.HangUp:
		hangUp(w)
	case f.Status != 0:
		writeError(w, f.Status, "server_error", fmt.Sprintf("fault injected by faketokensvc: status %d", f.Status))
	case f.Garbage:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("<html>502 Bad Gateway</html> {\"active\":tr"))
	default:
		return false
	}
	return true
}

// hangUp cuts the connection in the middle of the response's status line.
// Not later: curl and Python's http.client take a reply cut among the header
// fields as a complete, empty 200, so only Go's client would see the error.
// Where the connection cannot be hijacked (HTTP/2), it aborts the stream.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	defer conn.Close()
	conn.Write([]byte("HTTP/1.1 20"))
}
