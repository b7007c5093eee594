package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
	"wsauth/tokens"
)

// target is a fake token service and a wsauth server on loopback, and a
// /debug/vars like cmd/wsauth's admin listener.
type target struct {
	svc               *faketokensvc.Service
	srv               *server.Server
	url, svcURL, vars string
}

func newTarget(t *testing.T, recheck time.Duration) *target {
	t.Helper()
	svc := faketokensvc.New(faketokensvc.Options{ClientSecret: "s"})
	svcTS := httptest.NewServer(svc.Handler())
	srv := server.New(server.Config{
		Validator: tokens.NewCache(&tokens.Introspector{URL: svcTS.URL + "/introspect", ClientID: "wsauth", ClientSecret: "s"}, tokens.CacheConfig{}),
		Logger:    slog.New(slog.DiscardHandler),
		Recheck:   recheck,
	})
	ts := httptest.NewServer(srv)
	vars := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"memstats": {"HeapInuse": 1048576, "StackInuse": 0, "Sys": 2097152}, "wsauth": {"open_conns": %d, "goroutines": 1}}`, srv.OpenConns())
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		ts.Close()
		vars.Close()
		svcTS.Close()
	})
	return &target{svc: svc, srv: srv, url: ts.URL, svcURL: svcTS.URL, vars: vars.URL + "/debug/vars"}
}

func TestLoad(t *testing.T) {
	tg := newTarget(t, time.Minute)
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		want    []string
	}{
		{"issued tokens, messages, server vars", []string{"-conns", "24", "-tokens", "3", "-msg-rate", "200", "-admin", tg.vars}, false, []string{
			"handshakes: 24 ok, 0 failed", "failures: none", "closed by the server: none; dropped without a close frame: 0",
			"answered by the server: 24 of 24", "open_conns 24",
		}},
		{"query token", []string{"-conns", "5", "-tokens", "1", "-credential", "query"}, false, []string{"handshakes: 5 ok, 0 failed"}},
		{"subprotocol token", []string{"-conns", "5", "-tokens", "1", "-credential", "subprotocol"}, false, []string{"handshakes: 5 ok, 0 failed"}},
		{"unknown token", []string{"-conns", "5", "-token", strings.Repeat("A", 43)}, true, []string{
			"handshakes: 0 ok, 5 failed", "failures: http 401: 5",
		}},
		{"foreign origin", []string{"-conns", "3", "-origin", "https://evil.example"}, true, []string{"failures: http 403: 3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			args := append([]string{"-url", tg.url, "-tokensvc", tg.svcURL, "-hold", "300ms"}, tc.args...)
			err := run(context.Background(), args, &out)
			if (err != nil) != tc.wantErr {
				t.Errorf("run(%q) = %v; want error %v\n%s", tc.args, err, tc.wantErr, &out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("run(%q) output lacks %q:\n%s", tc.args, w, &out)
				}
			}
		})
	}
	t.Run("echoes measured", func(t *testing.T) {
		var out strings.Builder
		if err := run(context.Background(), []string{"-url", tg.url, "-tokensvc", tg.svcURL, "-conns", "4", "-hold", "500ms", "-msg-rate", "100"}, &out); err != nil {
			t.Fatal(err, &out)
		}
		m := regexp.MustCompile(`messages: (\d+) sent, (\d+) echoed, round trip p50`).FindStringSubmatch(out.String())
		if m == nil || m[1] == "0" || m[2] == "0" {
			t.Errorf("no echoes measured:\n%s", &out)
		}
	})
}

// TestLoadSeesRevocationClose revokes a token while the load holds its
// connections: the tool reports the server's 3000 closes and fails.
func TestLoadSeesRevocationClose(t *testing.T) {
	tg := newTarget(t, 50*time.Millisecond)
	tok, _ := tg.svc.Issue("victim", []string{"ws"}, time.Hour)
	done := make(chan error, 1)
	var out strings.Builder
	go func() {
		done <- run(context.Background(), []string{"-url", tg.url, "-token", tok, "-conns", "6", "-hold", "2s"}, &out)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for tg.srv.OpenConns() < 6 {
		if time.Now().After(deadline) {
			t.Fatal("the load did not open 6 connections in 5s")
		}
		<-time.After(10 * time.Millisecond) // polling with a deadline
	}
	tg.svc.Revoke(tok)
	err := <-done
	if err == nil || !strings.Contains(out.String(), "closed by the server: 3000: 6") {
		t.Errorf("run = %v; want an error and six 3000 closes:\n%s", err, &out)
	}
}
