package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// TestLoadUntilClosed holds connections until the server shuts down, as
// the load processes of -spawn do, and checks the JSON lines they print.
func TestLoadUntilClosed(t *testing.T) {
	tg := newTarget(t, time.Minute)
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"-url", tg.url, "-tokensvc", tg.svcURL, "-conns", "8", "-tokens", "2",
			"-subject-prefix", "w1-", "-hold", "10s", "-msg-rate", "100", "-until-closed", "-json", "-server-pid", strconv.Itoa(os.Getpid())}, &out)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for tg.srv.OpenConns() < 8 || !strings.Contains(out.String(), `"event":"opened"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the load did not open 8 connections in 5s:\n%s", out.String())
		}
		<-time.After(10 * time.Millisecond) // polling with a deadline
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := tg.srv.Shutdown(ctx); n != 8 || err != nil {
		t.Fatalf("Shutdown = %d, %v; want 8 closed", n, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("run with every connection closed by a shutdown = %v; want nil\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("printed %d lines; want opened and done:\n%s", len(lines), out.String())
	}
	var opened, last workerReport
	if err := errors.Join(json.Unmarshal([]byte(lines[0]), &opened), json.Unmarshal([]byte(lines[1]), &last)); err != nil {
		t.Fatal(err)
	}
	if opened.Event != "opened" || opened.Opened != 8 || opened.RampEnd < opened.RampStart {
		t.Errorf("first line = %+v; want opened 8", opened)
	}
	if last.Event != "done" || last.CloseCodes["1001"] != 8 || last.Dropped != 0 || len(last.Handshakes) != 8 || last.FirstClose == 0 {
		t.Errorf("last line = %+v; want done, 1001 for all 8, no drop, 8 handshake latencies", last)
	}
}

// syncBuffer is a strings.Builder that a test may read while run writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string // a part of the error; empty for none
	}{
		{"own files enough", checkOwnFiles(19_000, 20_000, 20_000), ""},
		{"own files unknown", checkOwnFiles(19_000, 0, 0), ""},
		{"own files below the hard limit", checkOwnFiles(19_000, 1024, 20_000), "raise it (ulimit -n)"},
		{"own files past the hard limit", checkOwnFiles(25_000, 20_000, 20_000), "at least 2 processes (-procs 2)"},
		{"own files far past the hard limit", checkOwnFiles(100_000, 20_000, 20_000), "-procs 6"},
		{"ports enough", checkPorts(19_000, 0, 32768, 60999), ""},
		{"ports short", checkPorts(30_000, 1, 32768, 60999), "at least 2 loopback source addresses"},
		{"ports with sources", checkPorts(30_000, 2, 32768, 60999), ""},
		{"server files enough", checkServerFiles(7, 20_000, 20_000, 19_000), ""},
		{"server files past the hard limit", checkServerFiles(7, 20_000, 20_000, 19_950), "/proc/7/limits"},
		{"server files below the hard limit", checkServerFiles(7, 1024, 20_000, 19_000), "raise it before starting the server"},
	}
	for _, tc := range tests {
		switch {
		case tc.want == "" && tc.err != nil:
			t.Errorf("%s: %v; want no error", tc.name, tc.err)
		case tc.want != "" && (tc.err == nil || !strings.Contains(tc.err.Error(), tc.want)):
			t.Errorf("%s: %v; want an error saying %q", tc.name, tc.err, tc.want)
		}
	}
	if _, _, err := procOpenFiles(os.Getpid()); err != nil {
		t.Errorf("procOpenFiles(own pid) = %v", err)
	}
	if rss, err := processRSS(os.Getpid()); err != nil || rss == 0 {
		t.Errorf("processRSS(own pid) = %d, %v; want some bytes", rss, err)
	}
}

func TestSplitAndBursts(t *testing.T) {
	if got := split(19_000, 3); !slices.Equal(got, []int{6334, 6333, 6333}) {
		t.Errorf("split(19000, 3) = %v", got)
	}
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	samples := []sample{
		{at(100), 100}, {at(200), 100}, // nothing yet
		{at(300), 400}, {at(400), 900}, {at(500), 1100}, // a sweep of 1000
		{at(5000), 1100},
		{at(15000), 1700}, {at(15100), 2100}, // the next
	}
	if got := bursts(100, samples, time.Second); !slices.Equal(got, []burst{{1000, true}, {1000, false}}) {
		t.Errorf("bursts = %v; want two sweeps of 1000, the last cut by the end", got)
	}
	if got := bursts(100, samples[2:], time.Second); !slices.Equal(got, []burst{{1000, false}, {1000, false}}) {
		t.Errorf("bursts from mid-sweep = %v; want the first sweep cut by the start", got)
	}
	if got := bursts(100, append(samples, sample{at(16000), 2100}), time.Second); !slices.Equal(got, []burst{{1000, true}, {1000, true}}) {
		t.Errorf("bursts = %v; want two whole sweeps of 1000", got)
	}
	if got := bursts(100, samples[:2], time.Second); len(got) != 0 {
		t.Errorf("bursts without growth = %v; want none", got)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string // a part of the error; empty for none
	}{
		{[]string{"-spawn", "bin/wsauth", "-conns", "19000", "-procs", "2", "-tokens", "1000", "-recheck", "15s", "-hold", "40s"}, ""},
		{[]string{"-tokensvc", "http://127.0.0.1:1", "-sources", "127.0.0.1, 127.0.0.2"}, ""},
		{[]string{"-spawn", "bin/wsauth", "-recheck", "1m", "-hold", "30s"}, "no sweep"},
		{[]string{"-spawn", "bin/wsauth", "-token", "t"}, "drop -token"},
		{[]string{"-spawn", "bin/wsauth", "-procs", "3", "-tokens", "2"}, "needs a token"},
		{[]string{"-tokensvc", "http://127.0.0.1:1", "-sources", "10.0.0.1"}, "not a loopback address"},
		{[]string{"-conns", "5"}, "-tokensvc"},
		{[]string{"-tokensvc", "x", "-credential", "header"}, "-credential"},
	}
	for _, tc := range tests {
		o, err := parseFlags(tc.args, io.Discard)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("parseFlags(%q) = %v; want no error", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("parseFlags(%q) = %v; want an error about %q", tc.args, err, tc.want)
		case tc.want == "" && slices.Contains(tc.args, "-sources") && len(o.sources) != 2:
			t.Errorf("parseFlags(%q): sources %v; want two", tc.args, o.sources)
		}
	}
}

// TestMain lets the test binary stand in for wsload when a coordinator
// under test starts it as a load process, and fails the tests if a
// connection's goroutine outlives them.
func TestMain(m *testing.M) {
	if os.Getenv("WSLOAD_TEST_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to d for the goroutines of connections and
// servers to end, and returns the stacks of those that did not.
func leakedGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		var leaked []string
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "main.readLoop") || strings.Contains(g, "net/http.(*conn).serve") ||
				strings.Contains(g, "wsauth/server.") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		<-time.After(50 * time.Millisecond) // polling with a deadline
	}
}

// TestSpawnScaleTest runs the whole -spawn test, small: wsauth built from
// this tree, two load processes, sweeps during the hold, a shutdown.
func TestSpawnScaleTest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wsauth and runs processes")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build wsauth with")
	}
	bin := filepath.Join(t.TempDir(), "wsauth")
	if out, err := exec.Command(gobin, "build", "-o", bin, "wsauth/cmd/wsauth").CombinedOutput(); err != nil {
		t.Fatalf("go build wsauth: %v\n%s", err, out)
	}
	t.Setenv("WSLOAD_TEST_AS_MAIN", "1") // for the load processes, which are this binary
	var out strings.Builder
	err = run(context.Background(), []string{"-spawn", bin, "-conns", "60", "-procs", "2", "-tokens", "6",
		"-recheck", "400ms", "-hold", "1500ms", "-msg-rate", "100", "-shutdown-timeout", "5s"}, &out)
	if err != nil {
		t.Fatalf("run -spawn = %v\n%s", err, &out)
	}
	for _, want := range []string{
		"handshakes: 60 ok, 0 failed",
		"introspections: 6 while opening (6 distinct tokens); per recheck sweep during the hold: ", // PASS: every whole sweep made 6
		"failures: none; dropped without a close frame: 0",
		"shutdown: close codes 1001: 60",
		"reporting 60 closed",
		"result: PASS",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("run -spawn output lacks %q:\n%s", want, &out)
		}
	}
}
