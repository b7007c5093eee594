package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/tokens"
)

func TestKinds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.verifier(t)
	opaque := e.issue(t, faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"ws"}, TTL: time.Hour})
	jwt := e.issue(t, faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"ws"}, TTL: time.Hour, JWT: true, Alg: "ES256"})
	for _, tc := range []struct {
		name               string
		kinds              *tokens.Kinds
		token              string
		want               error
		wantIntrospections int64
	}{
		{"JWT, both configured: verified locally", &tokens.Kinds{JWT: v, Introspector: e.in}, jwt, nil, 0},
		{"opaque, both configured: introspected", &tokens.Kinds{JWT: v, Introspector: e.in}, opaque, nil, 1},
		{"JWT, JWKS only", &tokens.Kinds{JWT: v}, jwt, nil, 0},
		{"opaque, JWKS only: invalid, no call", &tokens.Kinds{JWT: v}, opaque, tokens.ErrInvalid, 0},
		{"JWT, introspection only: introspected", &tokens.Kinds{Introspector: e.in}, jwt, nil, 1},
		{"opaque, introspection only", &tokens.Kinds{Introspector: e.in}, opaque, nil, 1},
		{"bad JWT, both configured: refused, not introspected", &tokens.Kinds{JWT: v, Introspector: e.in}, jwt + "x", tokens.ErrInvalid, 0},
		{"malformed, JWKS only", &tokens.Kinds{JWT: v}, "a b", tokens.ErrInvalid, 0},
	} {
		before := e.svc.Introspections()
		p, err := tc.kinds.Validate(context.Background(), tc.token)
		if tc.want == nil && (err != nil || p.Subject != "alice") || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: Validate = %+v, %v; want %v", tc.name, p, err, tc.want)
		}
		if n := e.svc.Introspections() - before; n != tc.wantIntrospections {
			t.Errorf("%s: %d introspections; want %d", tc.name, n, tc.wantIntrospections)
		}
	}
}

// A recheck of an open connection must see a revoked JWT when the token
// system can say so, and a key gone from the JWK set when it cannot.
func TestCacheRecheckOfJWT(t *testing.T) {
	t.Parallel()
	t.Run("JWKS and introspection: a recheck introspects", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		kinds := &tokens.Kinds{JWT: e.verifier(t), Introspector: e.in}
		c := tokens.NewCache(kinds, tokens.CacheConfig{Now: e.clock.Now, Recheck: kinds.Recheck})
		ctx := context.Background()
		jwt := e.issue(t, faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"ws"}, TTL: time.Hour, JWT: true})
		if _, err := c.Validate(ctx, jwt); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Refresh(ctx, jwt); err != nil {
			t.Fatalf("Refresh(live JWT) = %v; want nil", err)
		}
		e.svc.Revoke(jwt)
		if _, err := c.Validate(ctx, jwt); err != nil {
			t.Errorf("Validate(revoked JWT) inside the TTL = %v; want nil (cached, and local verification cannot see revocation)", err)
		}
		if _, err := c.Refresh(ctx, jwt); !errors.Is(err, tokens.ErrInvalid) {
			t.Errorf("Refresh(revoked JWT) = %v; want ErrInvalid: the recheck asks the token system", err)
		}
		if n := e.svc.Introspections(); n != 2 {
			t.Errorf("introspections = %d; want 2, one per Refresh and none per Validate", n)
		}
	})
	t.Run("JWKS only: a recheck verifies again", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		kinds := &tokens.Kinds{JWT: e.verifier(t)}
		c := tokens.NewCache(kinds, tokens.CacheConfig{Now: e.clock.Now, Recheck: kinds.Recheck})
		ctx := context.Background()
		jwt := e.issue(t, faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"ws"}, TTL: 3 * time.Hour, JWT: true, Alg: "EdDSA"})
		if _, err := c.Validate(ctx, jwt); err != nil {
			t.Fatal(err)
		}
		e.svc.RotateKeys(0) // the key is dropped at once
		e.clock.Advance(6 * time.Minute)
		eventually(t, "Refresh(JWT of a key gone from the JWK set)", func() error {
			if _, err := c.Refresh(ctx, jwt); !errors.Is(err, tokens.ErrInvalid) {
				return fmt.Errorf("error %v; want ErrInvalid", err)
			}
			return nil
		})
		if n := e.svc.Introspections(); n != 0 {
			t.Errorf("introspections = %d; want 0", n)
		}
	})
}

func TestCacheRecheckDoesNotJoinValidation(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	slow := tokens.ValidatorFunc(func(context.Context, string) (tokens.Principal, error) {
		close(entered)
		<-release
		return tokens.Principal{Subject: "alice", Expiry: time.Now().Add(time.Hour)}, nil
	})
	revoked := fmt.Errorf("%w: revoked", tokens.ErrInvalid)
	c := tokens.NewCache(slow, tokens.CacheConfig{Recheck: func(context.Context, string) (tokens.Principal, error) {
		return tokens.Principal{}, revoked
	}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Validate(context.Background(), "tok")
	}()
	<-entered
	refreshed := make(chan error, 1)
	go func() {
		_, err := c.Refresh(context.Background(), "tok")
		refreshed <- err
	}()
	select {
	case err := <-refreshed:
		if !errors.Is(err, revoked) {
			t.Errorf("Refresh while a Validate is in flight = %v; want the Recheck's answer", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("Refresh waited for the Validate in flight; want its own call to Recheck")
		close(release)
		<-refreshed
		<-done
		return
	}
	close(release)
	<-done
}

// TestKindsRemembersRevocationsSeenByRechecks: with JWKS and introspection,
// a JWT that a recheck found revoked stays refused for new validations
// after the cache forgot the recheck's answer, until it expires; the
// memory is bounded, forgetting the tokens that expire soonest.
func TestKindsRemembersRevocationsSeenByRechecks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("until exp", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		kinds := &tokens.Kinds{JWT: e.verifier(t), Introspector: e.in}
		c := tokens.NewCache(kinds, tokens.CacheConfig{Now: e.clock.Now, Recheck: kinds.Recheck})
		jwt := e.issue(t, faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"ws"}, TTL: time.Hour, JWT: true})
		if _, err := c.Validate(ctx, jwt); err != nil {
			t.Fatal(err)
		}
		e.svc.Revoke(jwt)
		if _, err := c.Refresh(ctx, jwt); !errors.Is(err, tokens.ErrInvalid) {
			t.Fatalf("Refresh(revoked JWT) = %v; want ErrInvalid", err)
		}
		e.clock.Advance(tokens.DefaultCacheTTL + tokens.DefaultCacheInvalidTTL)
		if _, err := c.Validate(ctx, jwt); !errors.Is(err, tokens.ErrInvalid) {
			t.Errorf("Validate(JWT a recheck found revoked), after the cache forgot the answer = %v; want ErrInvalid", err)
		}
		other := e.issue(t, faketokensvc.TokenRequest{Sub: "bob", Scopes: []string{"ws"}, TTL: time.Hour, JWT: true})
		if _, err := c.Validate(ctx, other); err != nil {
			t.Errorf("Validate(another JWT) = %v; want nil", err)
		}
		e.clock.Advance(time.Hour)
		if _, err := kinds.Validate(ctx, jwt); !errors.Is(err, tokens.ErrInvalid) {
			t.Errorf("Validate(revoked JWT past its exp) = %v; want ErrInvalid", err)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		kinds := &tokens.Kinds{JWT: e.verifier(t), Introspector: e.in, MaxRevoked: 2}
		var jwts []string
		for i, ttl := range []time.Duration{3 * time.Hour, time.Hour, 2 * time.Hour} {
			jwt := e.issue(t, faketokensvc.TokenRequest{Sub: fmt.Sprint("user", i), Scopes: []string{"ws"}, TTL: ttl, JWT: true})
			e.svc.Revoke(jwt)
			if _, err := kinds.Recheck(ctx, jwt); !errors.Is(err, tokens.ErrInvalid) {
				t.Fatalf("Recheck(revoked JWT %d) = %v; want ErrInvalid", i, err)
			}
			jwts = append(jwts, jwt)
		}
		for i, want := range []error{tokens.ErrInvalid, nil, tokens.ErrInvalid} {
			if _, err := kinds.Validate(ctx, jwts[i]); want == nil && err != nil || want != nil && !errors.Is(err, want) {
				t.Errorf("Validate(revoked JWT %d) with room for 2 = %v; want %v (the one expiring soonest is forgotten)", i, err, want)
			}
		}
	})
	t.Run("negative MaxRevoked remembers none", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		kinds := &tokens.Kinds{JWT: e.verifier(t), Introspector: e.in, MaxRevoked: -1}
		jwt := e.issue(t, faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"ws"}, TTL: time.Hour, JWT: true})
		e.svc.Revoke(jwt)
		kinds.Recheck(ctx, jwt)
		if _, err := kinds.Validate(ctx, jwt); err != nil {
			t.Errorf("Validate(revoked JWT) with MaxRevoked -1 = %v; want nil (local verification cannot see revocation)", err)
		}
	})
}
