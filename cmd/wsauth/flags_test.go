package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
)

// TestCacheTTLZeroIsOff: on the command line 0 means off, and -cache-ttl 0
// means no valid answer is reused: every request asks the token system.
// The default reuses it.
func TestCacheTTLZeroIsOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want int64 // introspections for 3 requests with one token
	}{
		{nil, 1},
		{[]string{"-cache-ttl", "0"}, 3},
		{[]string{"-cache-ttl", "0s"}, 3},
	} {
		svc := faketokensvc.New(faketokensvc.Options{ClientID: "wsauth", ClientSecret: "dev-secret"})
		ts := httptest.NewServer(svc.Handler())
		defer ts.Close()
		base, _ := startRun(t, append([]string{"-addr", "127.0.0.1:0", "-introspect-url", ts.URL + "/introspect"}, tc.args...),
			func(k string) string { return map[string]string{"WSAUTH_CLIENT_SECRET": "dev-secret"}[k] })
		tok, _ := svc.Issue("alice", []string{"api"}, time.Hour)
		probes := svc.Introspections() // the startup probe's
		for range 3 {
			req, _ := http.NewRequest("GET", base+"/api/me", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("flags %q: GET /api/me: %d; want 200", tc.args, resp.StatusCode)
			}
		}
		if got := svc.Introspections() - probes; got != tc.want {
			t.Errorf("flags %q: 3 requests with one token made %d introspections; want %d", tc.args, got, tc.want)
		}
	}
}

// TestFlagsZeroOffOrRefused: a numeric flag's 0 means off where off makes
// sense and is refused where it does not; no value quietly becomes a
// default. -h says which flags take 0 for off.
func TestFlagsZeroOffOrRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string // in the error; "" means accepted
	}{
		{[]string{"-cache-ttl", "0"}, ""},
		{[]string{"-auth-burst", "0"}, ""},
		{[]string{"-max-conns-per-subject", "0"}, ""},
		{[]string{"-cache-ttl", "-1s"}, "-cache-ttl is -1s; want 0 (off) or more"},
		{[]string{"-auth-burst", "-1"}, "-auth-burst is -1; want 0 (no throttle) or more"},
		{[]string{"-max-conns-per-subject", "-5"}, "-max-conns-per-subject is -5; want 0 (no bound) or more"},
		{[]string{"-recheck", "0"}, "-recheck is 0s; want more than 0"},
		{[]string{"-max-message-bytes", "0"}, "-max-message-bytes is 0; want more than 0"},
		{[]string{"-max-conns", "0"}, "-max-conns is 0; want more than 0"},
		{[]string{"-auth-refill", "0"}, "-auth-refill is 0s; want more than 0"},
		{[]string{"-shutdown-timeout", "0"}, "-shutdown-timeout is 0s; want more than 0"},
	} {
		_, err := parseFlags(tc.args, nil)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("parseFlags(%q) = %v; want it accepted", tc.args, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("parseFlags(%q) = %v; want %q", tc.args, err, tc.want)
		}
	}

	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	if err := run(context.Background(), []string{"-h"}, noEnv, stdout, stderr); err != nil {
		t.Fatalf("run -h = %v; want nil", err)
	}
	if stdout.String() != "" {
		t.Errorf("run -h wrote %q to stdout; want the usage on stderr only", stdout)
	}
	usage := stderr.String()
	for _, want := range []string{
		"how long a valid answer of the token system is reused (0: not at all)",
		"past it, 429 (0: no bound)",
		"before 429 (0: no throttle)",
		"-ticket-key-file",
	} {
		if !strings.Contains(usage, want) {
			t.Errorf("wsauth -h does not say %q:\n%s", want, usage)
		}
	}
}
