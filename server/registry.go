package server

import (
	"context"
	"errors"
	"sync"
	"time"

	"wsauth/tokens"
)

// registry tracks open WebSocket connections, so that their tokens can be
// rechecked and the server can close them on shutdown: http.Server.Shutdown
// does not touch hijacked connections.
type registry struct {
	s *Server

	mu       sync.Mutex
	sessions map[*session]struct{}
	subjects map[string]int // open sessions per subject, for MaxConnsPerSubject
	closing  bool
	wg       sync.WaitGroup // one per reserved session

	startSweep sync.Once
	stopSweep  chan struct{}
}

func newRegistry(s *Server) *registry {
	return &registry{s: s, sessions: make(map[*session]struct{}), subjects: make(map[string]int),
		stopSweep: make(chan struct{})}
}

// reserve registers a connection about to be upgraded, or says why it may
// not be: the server is full (MaxConns), the subject has its share
// (MaxConnsPerSubject) or the server is shutting down.
func (g *registry) reserve(a authorized, rl *logRecord) (*session, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closing:
		return nil, errShuttingDown
	case len(g.sessions) >= g.s.cfg.MaxConns:
		return nil, errTooManyConns
	case g.s.cfg.MaxConnsPerSubject > 0 && g.subjects[a.p.Subject] >= g.s.cfg.MaxConnsPerSubject:
		return nil, errSubjectConns
	}
	g.subjects[a.p.Subject]++
	sess := &session{s: g.s, rl: rl, a: a}
	g.sessions[sess] = struct{}{}
	g.wg.Add(1)
	g.startSweep.Do(func() { go g.sweep() })
	return sess, nil
}

// release forgets a connection whose handler has returned.
func (g *registry) release(sess *session) {
	sub := sess.subject() // a refresh keeps the subject (session.refresh)
	g.mu.Lock()
	delete(g.sessions, sess)
	if g.subjects[sub]--; g.subjects[sub] <= 0 {
		delete(g.subjects, sub)
	}
	g.mu.Unlock()
	g.wg.Done()
}

func (g *registry) len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sessions)
}

func (g *registry) snapshot() []*session {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*session, 0, len(g.sessions))
	for sess := range g.sessions {
		out = append(out, sess)
	}
	return out
}

// shutdown refuses new connections, closes the open ones with 1001 and
// waits for their handlers, or for ctx.
func (g *registry) shutdown(ctx context.Context) (int, error) {
	g.mu.Lock()
	first := !g.closing
	g.closing = true
	g.mu.Unlock()
	if first {
		close(g.stopSweep)
	}
	open := g.snapshot()
	for _, sess := range open {
		// In parallel: a client that stopped reading holds its close for
		// up to WriteTimeout, and must not hold the others.
		go sess.close(CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return len(open), nil
	case <-ctx.Done():
		for _, sess := range g.snapshot() {
			sess.drop()
		}
		<-done
		return len(open), ctx.Err()
	}
}

// sweep rechecks, every Recheck interval, the token of every open
// connection: one call to the token system per distinct token, however many
// connections share it.
func (g *registry) sweep() {
	t := time.NewTicker(g.s.cfg.Recheck)
	defer t.Stop()
	for {
		select {
		case <-g.stopSweep:
			return
		case <-t.C:
			g.recheckAll()
		}
	}
}

// recheckConcurrency bounds the calls a sweep has in flight.
const recheckConcurrency = 8

func (g *registry) recheckAll() {
	byToken := make(map[string][]*session)
	for _, sess := range g.snapshot() {
		sess.mu.Lock()
		tok := sess.a.token
		sess.mu.Unlock()
		byToken[tok] = append(byToken[tok], sess)
	}
	validate := g.s.cfg.Validator.Validate
	if r, ok := g.s.cfg.Validator.(refresher); ok {
		validate = r.Refresh
	}
	sem := make(chan struct{}, recheckConcurrency)
	var wg sync.WaitGroup
	for tok, sessions := range byToken {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), g.s.cfg.Recheck)
			defer cancel()
			p, err := validate(ctx, tok)
			if err != nil && !isInvalid(err) {
				g.s.cfg.Logger.Warn("recheck: token system unavailable; connections keep their last answer until their token expires",
					"connections", len(sessions), "sub", sessions[0].subject(), "cause", err.Error())
			}
			for _, sess := range sessions {
				sess.recheck(tok, p, err)
			}
		})
	}
	wg.Wait()
}

func isInvalid(err error) bool { return errors.Is(err, tokens.ErrInvalid) }
