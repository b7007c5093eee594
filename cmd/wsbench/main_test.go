package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain fails the tests if a connection's goroutine outlives them.
func TestMain(m *testing.M) {
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
			if strings.Contains(g, "main.(*client)") || strings.Contains(g, "net/http.(*conn).serve") ||
				strings.Contains(g, "golang.org/x/net/websocket") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		<-time.After(50 * time.Millisecond) // polling with a deadline
	}
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		xs   []float64
		q    float64
		want float64
	}{
		{[]float64{5}, 0.5, 5},
		{[]float64{5}, 0.25, 5},
		{[]float64{3, 1, 2}, 0.5, 2},
		{[]float64{4, 1, 3, 2}, 0.5, 2.5}, // an even count: the mean of the middle two
		{[]float64{4, 1, 3, 2}, 0.25, 1.75},
		{[]float64{4, 1, 3, 2}, 0.75, 3.25},
		{[]float64{4, 1, 3, 2}, 0, 1},
		{[]float64{4, 1, 3, 2}, 1, 4},
	}
	for _, tc := range tests {
		in := slices.Clone(tc.xs)
		if got := quantile(tc.xs, tc.q); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("quantile(%v, %v) = %v; want %v", tc.xs, tc.q, got, tc.want)
		}
		if !slices.Equal(in, tc.xs) {
			t.Errorf("quantile(%v, %v) reordered its input to %v", in, tc.q, tc.xs)
		}
	}
}

func TestSummarizePairedRatios(t *testing.T) {
	tests := []struct {
		name             string
		a, b             []float64
		median, q1, q3   float64
		medianA, medianB float64
		wantErr          bool
	}{
		{name: "one pair", a: []float64{3}, b: []float64{4}, median: 0.75, q1: 0.75, q3: 0.75, medianA: 3, medianB: 4},
		// Ratios 2, 2, 3: the median of ratios, not the ratio of medians (4/2).
		{name: "three pairs", a: []float64{2, 4, 6}, b: []float64{1, 2, 2}, median: 2, q1: 2, q3: 2.5, medianA: 4, medianB: 2},
		// A machine twice as busy in the second pair halves both sides:
		// the ratios do not move.
		{name: "noise shared by a pair cancels", a: []float64{80, 40, 80, 40}, b: []float64{100, 50, 100, 50},
			median: 0.8, q1: 0.8, q3: 0.8, medianA: 60, medianB: 75},
		{name: "ratios 1 to 4", a: []float64{1, 2, 3, 4}, b: []float64{1, 1, 1, 1}, median: 2.5, q1: 1.75, q3: 3.25, medianA: 2.5, medianB: 1},
		{name: "a pair with nothing on one side is left out", a: []float64{5, 2, 3}, b: []float64{0, 1, 1}, median: 2.5, q1: 2.25, q3: 2.75, medianA: 2.5, medianB: 1},
		{name: "no usable pair", a: []float64{1}, b: []float64{0}, wantErr: true},
		{name: "unpaired values", a: []float64{1, 2}, b: []float64{1}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := summarize(tc.a, tc.b)
			if (err != nil) != tc.wantErr {
				t.Fatalf("summarize(%v, %v) error = %v; want error %v", tc.a, tc.b, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			got := []float64{s.median, s.q1, s.q3, s.medianA, s.medianB}
			want := []float64{tc.median, tc.q1, tc.q3, tc.medianA, tc.medianB}
			for i := range got {
				if math.Abs(got[i]-want[i]) > 1e-12 {
					t.Errorf("summarize(%v, %v) = median %v (IQR %v–%v), medians %v, %v; want %v (%v–%v), %v, %v",
						tc.a, tc.b, s.median, s.q1, s.q3, s.medianA, s.medianB, tc.median, tc.q1, tc.q3, tc.medianA, tc.medianB)
					break
				}
			}
		})
	}
	s, _ := summarize([]float64{76, 71, 80}, []float64{100, 100, 100})
	if got := s.ratioString(); got != "0.76 (0.73–0.78)" {
		t.Errorf("ratioString() = %q; want %q", got, "0.76 (0.73–0.78)")
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		canPin  bool
		wantErr string // a part of the error; empty for none
		check   func(t *testing.T, o options)
	}{
		{name: "defaults", args: []string{"-wsauth", "bin/wsauth"}, canPin: true, check: func(t *testing.T, o options) {
			if o.wsauth != "bin/wsauth" || o.pairs != 15 || o.run != time.Second || o.workers != 4 ||
				o.echoConns != 50 || o.idleConns != 2000 || o.memPairs != 3 {
				t.Errorf("defaults = %+v; want 15 pairs of 1s, 4 workers, 50 echo connections, 2000 idle, 3 memory pairs", o)
			}
			if len(o.peers) != 1 || o.peers[0] != (peer{name: "xnet"}) {
				t.Errorf("default peers = %v; want the built-in xnet alone", o.peers)
			}
			if !slices.Equal(o.figures, allFigures) {
				t.Errorf("default figures = %v; want %v", o.figures, allFigures)
			}
			if o.serverCPU != "0" || o.loadCPU != "1" {
				t.Errorf("pinning = server %q, load %q; want 0 and 1", o.serverCPU, o.loadCPU)
			}
		}},
		{name: "peers and figures", args: []string{"-wsauth", "w", "-peer", "xnet", "-peer", "gorilla=bin/peer-gorilla",
			"-peer", "coder=/abs/peer-coder", "-figures", "handshake, memory", "-idle-conns", "10000", "-wsauth-flag", "-recheck=1m", "-wsauth-flag", "-cache-ttl=1m"},
			canPin: true, check: func(t *testing.T, o options) {
				want := []peer{{"xnet", ""}, {"gorilla", "bin/peer-gorilla"}, {"coder", "/abs/peer-coder"}}
				if !slices.Equal(o.peers, want) {
					t.Errorf("peers = %v; want %v", o.peers, want)
				}
				if !slices.Equal(o.figures, []string{"handshake", "memory"}) || o.measures("echo") {
					t.Errorf("figures = %v; want handshake and memory", o.figures)
				}
				if o.idleConns != 10000 || !slices.Equal(o.wsauthFlags, []string{"-recheck=1m", "-cache-ttl=1m"}) {
					t.Errorf("idle conns %d, wsauth flags %q; want 10000 and both flags in order", o.idleConns, o.wsauthFlags)
				}
			}},
		{name: "no taskset: not pinned", args: []string{"-wsauth", "w"}, canPin: false, check: func(t *testing.T, o options) {
			if o.serverCPU != "" || o.loadCPU != "" {
				t.Errorf("without taskset: server CPU %q, load CPU %q; want none", o.serverCPU, o.loadCPU)
			}
		}},
		{name: "pinning turned off", args: []string{"-wsauth", "w", "-pin=false"}, canPin: true, check: func(t *testing.T, o options) {
			if o.serverCPU != "" || o.loadCPU != "" {
				t.Errorf("-pin=false: server CPU %q, load CPU %q; want none", o.serverCPU, o.loadCPU)
			}
		}},
		{name: "other CPUs", args: []string{"-wsauth", "w", "-server-cpu", "2", "-load-cpu", "3"}, canPin: true, check: func(t *testing.T, o options) {
			if o.serverCPU != "2" || o.loadCPU != "3" {
				t.Errorf("server CPU %q, load CPU %q; want 2 and 3", o.serverCPU, o.loadCPU)
			}
		}},
		{name: "no wsauth", args: nil, canPin: true, wantErr: "-wsauth"},
		{name: "peer without binary", args: []string{"-wsauth", "w", "-peer", "gorilla"}, canPin: true, wantErr: "needs a binary"},
		{name: "peer twice", args: []string{"-wsauth", "w", "-peer", "xnet", "-peer", "xnet"}, canPin: true, wantErr: "twice"},
		{name: "peer without name", args: []string{"-wsauth", "w", "-peer", "=bin/x"}, canPin: true, wantErr: "want name"},
		{name: "unknown figure", args: []string{"-wsauth", "w", "-figures", "latency"}, canPin: true, wantErr: `unknown figure "latency"`},
		{name: "no figure", args: []string{"-wsauth", "w", "-figures", ","}, canPin: true, wantErr: "at least one figure"},
		{name: "no pairs", args: []string{"-wsauth", "w", "-pairs", "0"}, canPin: true, wantErr: "-pairs"},
		{name: "no run", args: []string{"-wsauth", "w", "-run", "0s"}, canPin: true, wantErr: "-run"},
		{name: "no idle connections", args: []string{"-wsauth", "w", "-idle-conns", "0"}, canPin: true, wantErr: "-idle-conns"},
		{name: "pinning without taskset", args: []string{"-wsauth", "w", "-pin"}, canPin: false, wantErr: "taskset"},
		{name: "stray argument", args: []string{"-wsauth", "w", "extra"}, canPin: true, wantErr: "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard, tc.canPin)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("parseFlags(%q) = %v; want no error", tc.args, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("parseFlags(%q) = %v; want an error about %q", tc.args, err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
}

func TestParseLoadFlags(t *testing.T) {
	tokens := func(string) string { return "tok1, tok2" }
	none := func(string) string { return "" }
	tests := []struct {
		name    string
		args    []string
		getenv  func(string) string
		wantErr string
	}{
		{"handshake", []string{"-url", "http://127.0.0.1:1"}, tokens, ""},
		{"hold", []string{"-url", "http://127.0.0.1:1", "-mode", "hold", "-conns", "10000"}, tokens, ""},
		{"no tokens", []string{"-url", "http://127.0.0.1:1"}, none, "WSBENCH_TOKENS"},
		{"no url", nil, tokens, "-url"},
		{"ws url", []string{"-url", "ws://127.0.0.1:1"}, tokens, "-url"},
		{"unknown mode", []string{"-url", "http://127.0.0.1:1", "-mode", "flood"}, tokens, "-mode"},
		{"no connections", []string{"-url", "http://127.0.0.1:1", "-conns", "0"}, tokens, "-conns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseLoadFlags(tc.args, tc.getenv, io.Discard)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("parseLoadFlags(%q) = %v; want no error", tc.args, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("parseLoadFlags(%q) = %v; want an error about %q", tc.args, err, tc.wantErr)
			case tc.wantErr == "" && !slices.Equal(o.tokens, []string{"tok1", "tok2"}):
				t.Errorf("tokens = %q; want tok1 and tok2 from $WSBENCH_TOKENS", o.tokens)
			}
		})
	}
}

// TestLoadAgainstXnetPeer runs each load mode against the built-in peer
// over real sockets.
func TestLoadAgainstXnetPeer(t *testing.T) {
	ts := httptest.NewServer(xnetHandler())
	defer ts.Close()
	env := func(string) string { return "some-token" }
	for _, mode := range []string{"handshake", "echo", "hold"} {
		t.Run(mode, func(t *testing.T) {
			var out strings.Builder
			args := []string{"-url", ts.URL, "-mode", mode, "-duration", "100ms", "-conns", "3"}
			if err := runLoad(args, env, strings.NewReader(""), &out); err != nil {
				t.Fatalf("load %q: %v", args, err)
			}
			dec := json.NewDecoder(strings.NewReader(out.String()))
			var r loadResult
			if err := dec.Decode(&r); err != nil {
				t.Fatalf("load %q printed %q: %v", args, &out, err)
			}
			if r.Failures != 0 || r.Ops == 0 {
				t.Errorf("load %q = %d operations, %d failures (%s); want some and none", args, r.Ops, r.Failures, r.FirstFailure)
			}
			if mode == "hold" {
				if r.Opened != 3 {
					t.Errorf("hold: opened %d; want 3", r.Opened)
				}
				var last loadResult
				if err := dec.Decode(&last); err != nil || last.Failures != 0 || last.Closed != 0 {
					// x/net/websocket ends the connection without answering the close.
					t.Errorf("hold: closing report %+v, %v; want no failure and no answered close", last, err)
				}
			}
		})
	}
	t.Run("wrong token path", func(t *testing.T) {
		ts := httptest.NewServer(nil) // 404 for /ws
		defer ts.Close()
		cl := newClient(ts.Listener.Addr().String(), []string{"t"}, time.Second)
		r := cl.handshakes(1, 50*time.Millisecond)
		if r.Ops != 0 || r.Failures == 0 || !strings.Contains(r.FirstFailure, "404") {
			t.Errorf("handshakes against a 404 = %+v; want failures naming the 404", r)
		}
	})
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"wsbench", "-wsauth", "bin/wsauth", "-wsauth-flag", "-recheck 1m", "it's"})
	want := `wsbench -wsauth bin/wsauth -wsauth-flag '-recheck 1m' 'it'\''s'`
	if got != want {
		t.Errorf("shellQuote = %s; want %s", got, want)
	}
	for n, want := range map[int]string{2000: "2,000", 10000: "10,000", 999: "999", 1000000: "1,000,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q; want %q", n, got, want)
		}
	}
}
