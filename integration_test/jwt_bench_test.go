package integration_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
	"wsauth/tokens"
)

// newBenchJWT starts the fake as a provider of JWT access tokens and wsauth
// verifying them against its JWK set, with no introspection, as
// cmd/wsauth runs with -issuer and no client secret, and the keys fetched.
func newBenchJWT(b *testing.B) (*benchServer, *faketokensvc.Service) {
	b.Helper()
	svcTS := httptest.NewUnstartedServer(nil)
	issuer := "http://" + svcTS.Listener.Addr().String()
	svc := faketokensvc.New(faketokensvc.Options{Issuer: issuer})
	svcTS.Config.Handler = svc.Handler()
	svcTS.Start()
	v, err := tokens.NewJWTVerifier(tokens.JWTConfig{JWKSURL: issuer + jwksPath, Issuer: issuer, Audience: audience, HTTPClient: svcTS.Client()})
	if err != nil {
		b.Fatal(err)
	}
	if err := v.FetchKeys(context.Background()); err != nil {
		b.Fatal(err)
	}
	kinds := &tokens.Kinds{JWT: v}
	cfg := server.Config{Validator: tokens.NewCache(kinds, tokens.CacheConfig{Recheck: kinds.Recheck})}
	return serveBenchWsauth(b, svc, svcTS, cfg), svc
}

// BenchmarkHandshakeJWT measures, per algorithm, a handshake with a JWT the
// server has never seen (cold: the signature is verified against a cached
// key; nothing is asked of the token system) against one whose answer is
// cached (warm), alternating the two operation by operation so that the
// ratio comes from one run on a noisy machine:
//
//	go test -bench HandshakeJWT -run '^$' -benchtime 2000x ./integration_test
//
// cold-ns/op and warm-ns/op are one handshake each; ratio is cold over
// warm; introspections/op counts the token system's calls per cold
// handshake, which must be 0.
func BenchmarkHandshakeJWT(b *testing.B) {
	for _, alg := range jwtAlgs {
		b.Run("alg="+alg, func(b *testing.B) {
			bs, svc := newBenchJWT(b)
			cold := make([]http.Header, b.N)
			for i := range cold {
				tok, _, err := svc.IssueToken(faketokensvc.TokenRequest{Sub: "bench-" + strconv.Itoa(i), Scopes: []string{"api", "ws"},
					TTL: time.Hour, JWT: true, Alg: alg})
				if err != nil {
					b.Fatal(err)
				}
				cold[i] = http.Header{"Authorization": {"Bearer " + tok}}
			}
			warmTok, _, _ := svc.IssueToken(faketokensvc.TokenRequest{Sub: "bench", Scopes: []string{"api", "ws"}, TTL: time.Hour, JWT: true, Alg: alg})
			warm := http.Header{"Authorization": {"Bearer " + warmTok}}
			handshake := func(h http.Header) error {
				c, err := benchDial(bs.url, h)
				if err != nil {
					return err
				}
				return c.nc.Close()
			}
			if err := handshake(warm); err != nil { // caches the warm token's answer
				b.Fatal(err)
			}
			before := svc.Introspections()
			var coldTime, warmTime time.Duration
			b.ResetTimer()
			for i := range b.N {
				first, second, df, ds := cold[i], warm, &coldTime, &warmTime
				if i%2 == 1 {
					first, second, df, ds = warm, cold[i], &warmTime, &coldTime
				}
				t0 := time.Now()
				if err := handshake(first); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := handshake(second); err != nil {
					b.Fatal(err)
				}
				*df += t1.Sub(t0)
				*ds += time.Since(t1)
			}
			b.StopTimer()
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(coldTime.Nanoseconds())/float64(b.N), "cold-ns/op")
			b.ReportMetric(float64(warmTime.Nanoseconds())/float64(b.N), "warm-ns/op")
			b.ReportMetric(coldTime.Seconds()/warmTime.Seconds(), "ratio")
			b.ReportMetric(float64(svc.Introspections()-before)/float64(b.N), "introspections/op")
		})
	}
}
