package tokens_test

import (
	"context"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/tokens"
)

// BenchmarkJWTVerify is the cost of verifying one JWT, signature and
// claims, with its key already fetched, per algorithm.
func BenchmarkJWTVerify(b *testing.B) {
	e := newEnv(b)
	v := e.verifier(b)
	for _, alg := range faketokensvc.Algorithms {
		tok := e.issue(b, faketokensvc.TokenRequest{Sub: "alice", Scopes: []string{"api", "ws"}, TTL: time.Hour, JWT: true, Alg: alg})
		if _, err := v.Validate(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
		b.Run(alg, func(b *testing.B) {
			for b.Loop() {
				if _, err := v.Validate(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkValidate compares the validations a request can cost, through
// the same Cache the server uses: cold (a token the cache does not hold: a
// JWT verified locally, its key cached, or an opaque token introspected over
// loopback) and warm (a token the cache holds). Run the sub-benchmarks in
// one run to compare them:
//
//	go test -run '^$' -bench Validate -benchmem ./tokens
func BenchmarkValidate(b *testing.B) {
	e := newEnv(b)
	kinds := &tokens.Kinds{JWT: e.verifier(b), Introspector: e.in}
	ctx := context.Background()
	issue := func(req faketokensvc.TokenRequest) string {
		req.Sub, req.Scopes, req.TTL = "alice", []string{"api", "ws"}, time.Hour
		return e.issue(b, req)
	}
	// A cache of one entry, asked for two tokens in turn, misses every time.
	cold := func(name string, a, z string) {
		b.Run(name, func(b *testing.B) {
			c := tokens.NewCache(kinds, tokens.CacheConfig{MaxEntries: 1, Now: e.clock.Now})
			before := e.svc.Introspections()
			i := 0
			for b.Loop() {
				tok := a
				if i++; i%2 == 0 {
					tok = z
				}
				if _, err := c.Validate(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(e.svc.Introspections()-before)/float64(b.N), "introspections/op")
		})
	}
	for _, alg := range faketokensvc.Algorithms {
		cold("cold/JWT-"+alg, issue(faketokensvc.TokenRequest{JWT: true, Alg: alg}), issue(faketokensvc.TokenRequest{JWT: true, Alg: alg}))
	}
	cold("cold/opaque-introspected", issue(faketokensvc.TokenRequest{}), issue(faketokensvc.TokenRequest{}))

	jwt := issue(faketokensvc.TokenRequest{JWT: true, Alg: "ES256"})
	b.Run("warm/JWT", func(b *testing.B) {
		c := tokens.NewCache(kinds, tokens.CacheConfig{Now: e.clock.Now})
		c.Validate(ctx, jwt)
		for b.Loop() {
			if _, err := c.Validate(ctx, jwt); err != nil {
				b.Fatal(err)
			}
		}
	})
}
