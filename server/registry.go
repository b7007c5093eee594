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
//
// # Rechecks
//
// Every Recheck interval the registry validates again the token behind
// every open connection, once per distinct token however many connections
// share it. It calls the validator's Refresh when it has one
// (tokens.Cache does), which bypasses the cache: a revocation is seen at
// the next recheck whatever the cache TTL, and N connections over T tokens
// cost T introspections per interval, not N. The answer:
//   - invalid (revoked, expired, unknown): close with 3000 "token revoked";
//   - valid without the scope /ws needs (Config.WSScope): close with 3003
//     "insufficient scope";
//   - valid: the connection takes the new principal and its expiry;
//   - the token system cannot answer (ErrUnavailable): the connection
//     keeps the answer it had, until its token's own expiry, and one
//     warning per sweep is logged. An outage of the token system must not
//     disconnect every client at once, each of which would then reconnect
//     into the same outage and be refused with 503: new connections still
//     fail closed.
//
// The sweep goroutine runs only while connections are open.
type registry struct {
	s *Server

	mu        sync.Mutex
	sessions  map[*session]struct{}
	subjects  map[string]int // open sessions per subject, for MaxConnsPerSubject
	closing   bool
	wg        sync.WaitGroup // one per reserved session
	sweepStop chan struct{}  // closed to stop the running sweep; nil when none runs
}

func newRegistry(s *Server) *registry {
	return &registry{s: s, sessions: make(map[*session]struct{}), subjects: make(map[string]int)}
}

// reserve registers a connection about to be upgraded, or says why it may
// not be: the server is full (MaxConns), the subject has its share
// (MaxConnsPerSubject) or the server is shutting down.
func (g *registry) reserve(a authorized) (*session, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.refusalLocked(a.p.Subject); err != nil {
		return nil, err
	}
	g.subjects[a.p.Subject]++
	sess := &session{s: g.s, a: a}
	g.sessions[sess] = struct{}{}
	g.wg.Add(1)
	if g.sweepStop == nil {
		g.sweepStop = make(chan struct{})
		go g.sweep(g.sweepStop)
	}
	return sess, nil
}

// admits reports why reserve would refuse a connection of sub now, or nil:
// for GET /api/ws-check, which reserves nothing.
func (g *registry) admits(sub string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refusalLocked(sub)
}

// refusalLocked is reserve's decision; g.mu must be held.
func (g *registry) refusalLocked(sub string) error {
	switch {
	case g.closing:
		return errShuttingDown
	case len(g.sessions) >= g.s.cfg.MaxConns:
		return errTooManyConns
	case g.s.cfg.MaxConnsPerSubject > 0 && g.subjects[sub] >= g.s.cfg.MaxConnsPerSubject:
		return errSubjectConns
	}
	return nil
}

// release forgets a connection whose handler has returned.
func (g *registry) release(sess *session) {
	sub := sess.subject() // a refresh keeps the subject (session.refresh)
	g.mu.Lock()
	delete(g.sessions, sess)
	if g.subjects[sub]--; g.subjects[sub] <= 0 {
		delete(g.subjects, sub)
	}
	if len(g.sessions) == 0 && g.sweepStop != nil {
		close(g.sweepStop)
		g.sweepStop = nil
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
// waits for their handlers; when ctx ends first, it drops the connections
// still open and waits for their handlers, which then return at once.
func (g *registry) shutdown(ctx context.Context) (int, error) {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
	open := g.snapshot()
	var closers sync.WaitGroup
	for _, sess := range open {
		// In parallel: a client that stopped reading holds its close for
		// up to WriteTimeout, and must not hold the others.
		closers.Go(func() { sess.closeFor(errShuttingDown) })
	}
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		for _, sess := range g.snapshot() {
			sess.drop()
		}
		<-done
	}
	closers.Wait()
	return len(open), err
}

// sweep rechecks, every Recheck interval, the token of every open
// connection, until stop is closed.
func (g *registry) sweep(stop <-chan struct{}) {
	t := time.NewTicker(g.s.cfg.Recheck)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			g.recheckAll(g.s.cfg.Recheck)
		}
	}
}

// recheckConcurrency bounds the calls a sweep has in flight.
const recheckConcurrency = 8

// recheckAll is one sweep: one call to the token system per distinct token,
// at most recheckConcurrency at a time, started within budget (one recheck
// interval). A token system that hangs would otherwise stretch one sweep to
// tokens/concurrency × the introspection timeout: with 10,000 tokens, about
// 40 minutes of revocations seen late. Tokens the sweep had no time for keep
// their answer, as under an outage, and map order, which Go randomizes,
// gives them a turn in a later sweep.
func (g *registry) recheckAll(budget time.Duration) {
	deadline := time.Now().Add(budget)
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
	var (
		mu                     sync.Mutex
		failedTokens, failed   int   // unavailable answers, and the connections behind them
		cause                  error // the first
		skippedTokens, skipped int   // not rechecked: the budget ran out
	)
	sem := make(chan struct{}, recheckConcurrency)
	var wg sync.WaitGroup
	for tok, sessions := range byToken {
		sem <- struct{}{}
		if time.Now().After(deadline) {
			<-sem
			skippedTokens++
			skipped += len(sessions)
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), budget)
			defer cancel()
			p, err := validate(ctx, tok)
			if err != nil && !isInvalid(err) {
				mu.Lock()
				failedTokens++
				failed += len(sessions)
				if cause == nil {
					cause = err
				}
				mu.Unlock()
			}
			for _, sess := range sessions {
				sess.recheck(tok, p, err)
			}
		})
	}
	wg.Wait()
	if skippedTokens > 0 {
		g.s.cfg.Logger.Warn("recheck: the sweep ran out of its interval; these connections keep their last answer until a later sweep",
			"connections", skipped, "tokens", skippedTokens)
	}
	if failedTokens > 0 {
		g.s.cfg.Logger.Warn("recheck: token system unavailable; connections keep their last answer until their token expires",
			"connections", failed, "tokens", failedTokens, "cause", cause.Error())
	}
}

func isInvalid(err error) bool { return errors.Is(err, tokens.ErrInvalid) }
