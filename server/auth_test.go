package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"wsauth/tokens"
)

// TestFailedAuthNeverReachesHandler counts the calls that reach a handler
// behind require: only a valid token with the route's scope gets there.
func TestFailedAuthNeverReachesHandler(t *testing.T) {
	t.Parallel()
	v := tokens.ValidatorFunc(func(_ context.Context, token string) (tokens.Principal, error) {
		switch token {
		case "valid":
			return tokens.Principal{Subject: "alice", Scopes: []string{"api"}, Expiry: time.Now().Add(time.Hour)}, nil
		case "noscope":
			return tokens.Principal{Subject: "bob", Scopes: []string{"ws"}}, nil
		case "down":
			return tokens.Principal{}, fmt.Errorf("%w: test", tokens.ErrUnavailable)
		case "panic-free-garbage":
			return tokens.Principal{}, fmt.Errorf("something unclassified")
		}
		return tokens.Principal{}, fmt.Errorf("%w: test", tokens.ErrInvalid)
	})
	s := New(Config{Validator: v})
	var reached atomic.Int64
	var gotSub atomic.Value
	h := s.require("api", apiSources, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		p, _ := PrincipalFrom(r.Context())
		gotSub.Store(p.Subject)
	}))
	ts := httptest.NewServer(h)
	defer ts.Close()
	for _, tc := range []struct {
		token  string
		status int
	}{
		{"", 401},
		{"invalid", 401},
		{"noscope", 403},
		{"down", 503},
		{"panic-free-garbage", 500},
		{"valid", 200},
	} {
		req, _ := http.NewRequest("GET", ts.URL, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("token %q: status %d; want %d", tc.token, resp.StatusCode, tc.status)
		}
	}
	if n := reached.Load(); n != 1 {
		t.Errorf("handler reached %d times; want 1 (the valid token only)", n)
	}
	if sub, _ := gotSub.Load().(string); sub != "alice" {
		t.Errorf("PrincipalFrom in the handler: subject %q; want alice", sub)
	}
}
