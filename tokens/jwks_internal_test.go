package tokens

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestKeySetRefreshFollowsMaxAge(t *testing.T) {
	t.Parallel()
	set := []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`)
	for _, tc := range []struct {
		cacheControl string
		want         time.Duration // when the set is fetched again
	}{
		{"public, max-age=300", 5 * time.Minute},
		{`max-age="300"`, 5 * time.Minute},
		{"Max-Age=120, must-revalidate", 2 * time.Minute},
		{"max-age=0", MinJWKSRefresh},
		{"max-age=1", MinJWKSRefresh},
		{"no-cache", MinJWKSRefresh},
		{"max-age=3600, no-store", MinJWKSRefresh},
		{"max-age=86400", MaxJWKSRefresh},
		{"max-age=99999999999999999999", MaxJWKSRefresh},
		{"max-age=-5", DefaultJWKSRefresh},
		{"max-age=junk", DefaultJWKSRefresh},
		{"", DefaultJWKSRefresh},
	} {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", tc.cacheControl)
			w.Write(set)
		}))
		now := time.Unix(1_800_000_000, 0)
		v, _ := NewJWTVerifier(JWTConfig{JWKSURL: ts.URL, Issuer: "iss", Audience: "api", Now: func() time.Time { return now }})
		err := v.FetchKeys(context.Background())
		ts.Close()
		if got := v.keys.refreshAt.Sub(now); err != nil || got != tc.want {
			t.Errorf("Cache-Control %q: set fetched again after %v (error %v); want %v", tc.cacheControl, got, err, tc.want)
		}
	}
}
