package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/tokens"
)

// counting is a Validator that answers from a table and counts its calls.
type counting struct {
	calls   atomic.Int64
	answers map[string]error // missing: valid
	exp     time.Time
}

func (c *counting) Validate(_ context.Context, token string) (tokens.Principal, error) {
	c.calls.Add(1)
	if err := c.answers[token]; err != nil {
		return tokens.Principal{}, err
	}
	return tokens.Principal{Subject: "sub-" + token, Scopes: []string{"ws"}, Expiry: c.exp}, nil
}

func TestCacheSingleFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok, _ := e.svc.Issue("alice", []string{"ws"}, time.Hour)
	// Latency keeps the one call in flight while the others pile up.
	e.svc.SetFaults(faketokensvc.Faults{Latency: 100 * time.Millisecond})
	c := tokens.NewCache(e.in, tokens.CacheConfig{Now: e.clock.Now})

	const n = 200
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			p, err := c.Validate(context.Background(), tok)
			if err == nil && p.Subject != "alice" {
				err = fmt.Errorf("subject %q", p.Subject)
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
	}
	if got := e.svc.Introspections(); got != 1 {
		t.Errorf("%d goroutines validating one cold token: introspections = %d; want exactly 1", n, got)
	}
}

func TestCacheLifetimes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := tokens.NewCache(e.in, tokens.CacheConfig{TTL: 30 * time.Second, InvalidTTL: 5 * time.Second, Now: e.clock.Now})
	ctx := context.Background()
	calls := func() int64 { return e.svc.Introspections() }

	// Valid: kept for TTL.
	long, _ := e.svc.Issue("alice", []string{"ws"}, time.Hour)
	c.Validate(ctx, long)
	c.Validate(ctx, long)
	if got := calls(); got != 1 {
		t.Fatalf("valid token validated twice: introspections = %d; want 1", got)
	}
	e.clock.Advance(31 * time.Second)
	c.Validate(ctx, long)
	if got := calls(); got != 2 {
		t.Fatalf("valid token after TTL: introspections = %d; want 2", got)
	}

	// Valid but expiring inside the TTL: the expiry wins.
	short, _ := e.svc.Issue("bob", []string{"ws"}, 10*time.Second)
	if _, err := c.Validate(ctx, short); err != nil {
		t.Fatalf("Validate(short) = %v", err)
	}
	e.clock.Advance(11 * time.Second)
	if _, err := c.Validate(ctx, short); !errors.Is(err, tokens.ErrInvalid) {
		t.Errorf("token past its expiry, inside TTL: error = %v; want ErrInvalid (the cache must not outlive exp)", err)
	}

	// Invalid: kept for InvalidTTL.
	before := calls()
	for range 10 {
		c.Validate(ctx, "no-such-token")
	}
	if got := calls() - before; got != 1 {
		t.Errorf("10 validations of one bad token: introspections = %d; want 1", got)
	}
	e.clock.Advance(6 * time.Second)
	c.Validate(ctx, "no-such-token")
	if got := calls() - before; got != 2 {
		t.Errorf("bad token after InvalidTTL: introspections = %d; want 2", got)
	}

	// Unavailable: never kept, and recovery is seen at once.
	fresh, _ := e.svc.Issue("carol", []string{"ws"}, time.Hour)
	e.svc.SetFaults(faketokensvc.Faults{Status: 500})
	for range 3 {
		if _, err := c.Validate(ctx, fresh); !errors.Is(err, tokens.ErrUnavailable) {
			t.Fatalf("token system down: error = %v; want ErrUnavailable", err)
		}
	}
	e.svc.SetFaults(faketokensvc.Faults{})
	if p, err := c.Validate(ctx, fresh); err != nil || p.Subject != "carol" {
		t.Errorf("first validation after recovery = %+v, %v; want carol, nil", p, err)
	}
}

func TestCacheRefreshSeesRevocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := tokens.NewCache(e.in, tokens.CacheConfig{Now: e.clock.Now})
	ctx := context.Background()
	tok, _ := e.svc.Issue("alice", []string{"ws"}, time.Hour)
	if _, err := c.Validate(ctx, tok); err != nil {
		t.Fatal(err)
	}
	e.svc.Revoke(tok)
	if _, err := c.Validate(ctx, tok); err != nil {
		t.Fatalf("cached answer inside TTL: %v; want nil", err)
	}
	if _, err := c.Refresh(ctx, tok); !errors.Is(err, tokens.ErrInvalid) {
		t.Fatalf("Refresh after revoke: %v; want ErrInvalid", err)
	}
	if _, err := c.Validate(ctx, tok); !errors.Is(err, tokens.ErrInvalid) {
		t.Errorf("Validate after Refresh saw the revocation: %v; want ErrInvalid", err)
	}
}

func TestCacheBoundEvictsOldest(t *testing.T) {
	t.Parallel()
	next := &counting{}
	c := tokens.NewCache(next, tokens.CacheConfig{MaxEntries: 100})
	ctx := context.Background()
	for i := range 1000 {
		c.Validate(ctx, fmt.Sprintf("token-%d", i))
	}
	if got := c.Len(); got != 100 {
		t.Fatalf("Len after 1000 tokens = %d; want the bound, 100", got)
	}
	before := next.calls.Load()
	c.Validate(ctx, "token-999") // newest: kept
	if got := next.calls.Load() - before; got != 0 {
		t.Errorf("newest token: %d calls; want 0 (still cached)", got)
	}
	c.Validate(ctx, "token-0") // oldest: evicted
	if got := next.calls.Load() - before; got != 1 {
		t.Errorf("oldest token: %d calls; want 1 (evicted first)", got)
	}
}

func TestCacheWaiterHonoursContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{})
	slow := tokens.ValidatorFunc(func(ctx context.Context, token string) (tokens.Principal, error) {
		close(entered)
		<-release
		return tokens.Principal{Subject: "alice"}, nil
	})
	c := tokens.NewCache(slow, tokens.CacheConfig{})
	leader := make(chan error, 1)
	go func() { _, err := c.Validate(context.Background(), "tok"); leader <- err }()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Validate(ctx, "tok"); !errors.Is(err, tokens.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("waiter with cancelled context: %v; want ErrUnavailable wrapping context.Canceled", err)
	}
	close(release)
	if err := <-leader; err != nil {
		t.Errorf("leader: %v; want nil", err)
	}
}

func TestCacheSurvivesPanickingValidator(t *testing.T) {
	t.Parallel()
	c := tokens.NewCache(tokens.ValidatorFunc(func(context.Context, string) (tokens.Principal, error) {
		panic("boom")
	}), tokens.CacheConfig{})
	func() {
		defer func() { recover() }()
		c.Validate(context.Background(), "tok")
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { recover() }()
		c.Validate(context.Background(), "tok")
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("second Validate blocked after the first call panicked")
	}
}

// TestCacheZeroAndNegative: a zero CacheConfig field means its default, a
// negative TTL or InvalidTTL turns reuse of that kind of answer off, and a
// negative MaxEntries, which has no "off", panics.
func TestCacheZeroAndNegative(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bad := errors.New("no such token")
	for _, tc := range []struct {
		name                 string
		cfg                  tokens.CacheConfig
		validCalls, badCalls int64 // calls for 3 validations of each
	}{
		{"zero: defaults", tokens.CacheConfig{}, 1, 1},
		{"negative TTL: valid answers not reused", tokens.CacheConfig{TTL: -1}, 3, 1},
		{"negative InvalidTTL: invalid answers not reused", tokens.CacheConfig{InvalidTTL: -1}, 1, 3},
		{"both negative", tokens.CacheConfig{TTL: -1, InvalidTTL: -1}, 3, 3},
	} {
		next := &counting{answers: map[string]error{"bad": fmt.Errorf("%w: %w", tokens.ErrInvalid, bad)}}
		c := tokens.NewCache(next, tc.cfg)
		for range 3 {
			c.Validate(ctx, "good")
		}
		if got := next.calls.Load(); got != tc.validCalls {
			t.Errorf("%s: 3 validations of a valid token: %d calls; want %d", tc.name, got, tc.validCalls)
		}
		before := next.calls.Load()
		for range 3 {
			c.Validate(ctx, "bad")
		}
		if got := next.calls.Load() - before; got != tc.badCalls {
			t.Errorf("%s: 3 validations of an invalid token: %d calls; want %d", tc.name, got, tc.badCalls)
		}
	}

	// A Refresh whose answer may not be reused also drops the answer it
	// replaces: an old "invalid" must not outlive a new "valid".
	next := &counting{answers: map[string]error{"tok": tokens.ErrInvalid}}
	c := tokens.NewCache(next, tokens.CacheConfig{TTL: -1})
	c.Validate(ctx, "tok")
	delete(next.answers, "tok")
	if _, err := c.Refresh(ctx, "tok"); err != nil {
		t.Fatalf("Refresh of a token now valid: %v", err)
	}
	if _, err := c.Validate(ctx, "tok"); err != nil {
		t.Errorf("Validate after a Refresh answered valid, with TTL off: %v; want nil, not the older invalid answer", err)
	}

	defer func() {
		if recover() == nil {
			t.Error("NewCache with MaxEntries -1 did not panic; a cache has no unbounded mode")
		}
	}()
	tokens.NewCache(next, tokens.CacheConfig{MaxEntries: -1})
}
