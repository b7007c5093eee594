// Command wsbench measures a wsauth binary from outside, against peers that
// people would pick instead: the same handshake and echo, timed by a load
// generator in a process of its own, each server alone on one CPU and the
// load on another (taskset), in alternating short runs whose per-pair ratios
// are summed up by their median and interquartile range.
//
// Figures, each per peer:
//   - handshake rate: four workers, each dialing /ws?token=…, completing the
//     opening handshake, reading the welcome and closing properly (close
//     1000, then the server's end of the connection), over and over;
//   - echo rate: 50 connections, each sending a text message and waiting
//     for its echo, over and over;
//   - idle memory per connection: the server's RSS (/proc/<pid>/status)
//     with N authenticated idle connections held, minus its RSS before,
//     over N; a fresh server process for each measurement.
//
// The peers are servers that take -addr, -introspect-url and -client-id,
// read the client secret from $WSAUTH_CLIENT_SECRET and log a line
// "… listening … url=http://host:port", as wsauth does: "xnet", a bare
// golang.org/x/net/websocket server with no authentication, is built in
// ("wsbench xnet"); gorilla/websocket and coder/websocket servers doing
// wsauth's cached introspection are nested modules under peers/, built on
// their own. wsbench runs its own fake token service (package
// faketokensvc) for wsauth and the peers to ask.
//
// Build and run from the repository's root (docs/PERFORMANCE.md):
//
//	go build -o bin/ ./cmd/wsbench ./cmd/wsauth
//	go build -C cmd/wsbench/peers/gorilla -o ../../../../bin/peer-gorilla .
//	go build -C cmd/wsbench/peers/coder -o ../../../../bin/peer-coder .
//	bin/wsbench -wsauth bin/wsauth -peer xnet -peer gorilla=bin/peer-gorilla -peer coder=bin/peer-coder
//
// The figures are ratios wsauth/peer: above 1 wsauth is faster (handshake,
// echo), or uses more memory (idle memory).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wsbench:", err)
		os.Exit(1)
	}
}

// run dispatches: "load" and "xnet" are the processes the coordinator
// starts; anything else is the coordinator's flags.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "load":
			return runLoad(args[1:], getenv, stdin, stdout)
		case "xnet":
			return runXnet(ctx, args[1:], stdout)
		}
	}
	o, err := parseFlags(args, stdout, hasTaskset())
	if err != nil {
		return err
	}
	return compare(ctx, o, stdout)
}

// peer is a server wsauth is compared with.
type peer struct {
	name string
	path string // its binary; empty for the built-in xnet peer
}

// peerTitles name the known peers in the table as docs/PERFORMANCE.md does.
var peerTitles = map[string]string{
	"xnet":    "bare `x/net/websocket`, no auth",
	"gorilla": "gorilla/websocket + the same cached introspection",
	"coder":   "coder/websocket + the same cached introspection",
}

func (p peer) title() string {
	if t, ok := peerTitles[p.name]; ok {
		return t
	}
	return p.name
}

// figures the tool measures, in table order.
var allFigures = []string{"handshake", "echo", "memory"}

// options are the coordinator's flags.
type options struct {
	wsauth      string
	wsauthFlags []string
	peers       []peer
	pairs       int
	run         time.Duration
	workers     int
	echoConns   int
	idleConns   int
	memPairs    int
	figures     []string
	serverCPU   string // taskset CPU lists; empty when not pinning
	loadCPU     string
}

func (o options) measures(figure string) bool { return slices.Contains(o.figures, figure) }

// parseFlags reads the coordinator's flags. canPin says whether taskset is
// there to pin with; without it, or with -pin=false, nothing is pinned.
func parseFlags(args []string, out io.Writer, canPin bool) (options, error) {
	var o options
	var figures string
	var pin bool
	fs := flag.NewFlagSet("wsbench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.wsauth, "wsauth", "", "the wsauth binary to measure (required)")
	fs.Func("wsauth-flag", "a flag to pass to wsauth besides -addr, -introspect-url, -client-id and -max-conns (repeatable)", func(v string) error {
		o.wsauthFlags = append(o.wsauthFlags, v)
		return nil
	})
	fs.Func("peer", "a peer to compare with: xnet (built in), or name=binary (repeatable; default xnet)", func(v string) error {
		name, path, _ := strings.Cut(v, "=")
		switch {
		case name == "":
			return errors.New("want name or name=binary")
		case path == "" && name != "xnet":
			return fmt.Errorf("peer %q needs a binary: %s=path (only xnet is built in)", name, name)
		}
		for _, p := range o.peers {
			if p.name == name {
				return fmt.Errorf("peer %q given twice", name)
			}
		}
		o.peers = append(o.peers, peer{name: name, path: path})
		return nil
	})
	fs.IntVar(&o.pairs, "pairs", 15, "pairs of runs (wsauth, peer) per figure")
	fs.DurationVar(&o.run, "run", time.Second, "length of one handshake or echo run")
	fs.IntVar(&o.workers, "workers", 4, "handshake workers")
	fs.IntVar(&o.echoConns, "echo-conns", 50, "echo connections")
	fs.IntVar(&o.idleConns, "idle-conns", 2000, "idle connections held for the memory figure (10000 for the 12 KiB target)")
	fs.IntVar(&o.memPairs, "mem-pairs", 3, "pairs of memory measurements, each on fresh server processes")
	fs.StringVar(&figures, "figures", strings.Join(allFigures, ","), "figures to measure: handshake, echo, memory")
	fs.BoolVar(&pin, "pin", canPin, "pin the server and the load to different CPUs with taskset")
	fs.StringVar(&o.serverCPU, "server-cpu", "0", "CPU list (taskset -c) for the server")
	fs.StringVar(&o.loadCPU, "load-cpu", "1", "CPU list (taskset -c) for the load")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if len(o.peers) == 0 {
		o.peers = []peer{{name: "xnet"}}
	}
	o.figures = splitList(figures)
	for _, f := range o.figures {
		if !slices.Contains(allFigures, f) {
			return o, fmt.Errorf("-figures: unknown figure %q; want some of %s", f, strings.Join(allFigures, ", "))
		}
	}
	switch {
	case o.wsauth == "":
		return o, errors.New("-wsauth: give the wsauth binary to measure")
	case len(o.figures) == 0:
		return o, errors.New("-figures: give at least one figure")
	case o.pairs < 1 || o.memPairs < 1:
		return o, errors.New("-pairs and -mem-pairs must be at least 1")
	case o.run <= 0:
		return o, errors.New("-run must be positive")
	case o.workers < 1 || o.echoConns < 1 || o.idleConns < 1:
		return o, errors.New("-workers, -echo-conns and -idle-conns must be at least 1")
	}
	if !pin {
		o.serverCPU, o.loadCPU = "", ""
	} else if !canPin {
		return o, errors.New("-pin: taskset is not installed (util-linux); run with -pin=false")
	}
	return o, nil
}

// hasTaskset reports whether taskset can pin processes here: it is
// installed and there are at least two CPUs to keep apart.
func hasTaskset() bool {
	_, err := exec.LookPath("taskset")
	return err == nil && runtime.NumCPU() >= 2
}

// env is what one comparison shares: the fake token service and its
// tokens, and how to start servers and loads.
type env struct {
	o      options
	svcURL string
	secret string
	token  []string // the one token of the handshake and echo runs
	tokens []string // the idle connections', 50 connections each
	load   loadRunner
}

// compare runs every figure against every peer and prints the table.
func compare(ctx context.Context, o options, stdout io.Writer) error {
	for _, p := range append([]peer{{path: o.wsauth}}, o.peers...) {
		if p.path == "" {
			continue
		}
		if _, err := os.Stat(p.path); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	e := &env{o: o, load: loadRunner{self: self, cpus: o.loadCPU}}
	var key [16]byte
	rand.Read(key[:])
	e.secret = hex.EncodeToString(key[:])
	svc := faketokensvc.New(faketokensvc.Options{ClientID: "wsauth", ClientSecret: e.secret})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	e.svcURL = "http://" + ln.Addr().String() + "/introspect"
	tok, _ := svc.Issue("bench", []string{"api", "ws"}, 24*time.Hour)
	e.token = []string{tok}
	for i := range (o.idleConns + 49) / 50 {
		tok, _ := svc.Issue("idle-"+strconv.Itoa(i), []string{"api", "ws"}, 24*time.Hour)
		e.tokens = append(e.tokens, tok)
	}

	fmt.Fprintf(stdout, "wsbench: %s against %d peer(s); %d pairs of %v; %d CPUs; %s\n",
		o.wsauth, len(o.peers), o.pairs, o.run, runtime.NumCPU(), pinning(o))
	var rows []row
	var logs []string
	defer func() {
		for _, l := range logs {
			os.Remove(l)
		}
	}()
	for _, p := range o.peers {
		r, wsauthLogs, err := e.comparePeer(ctx, p, stdout)
		logs = append(logs, wsauthLogs...)
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	if err := checkLogs(logs, append(e.token, e.tokens...)); err != nil {
		return err
	}
	printTable(stdout, o, rows)
	fmt.Fprintf(stdout, "\ncommand: %s\n", shellQuote(append([]string{"wsbench"}, os.Args[1:]...)))
	return nil
}

func pinning(o options) string {
	if o.serverCPU == "" {
		return "not pinned"
	}
	return fmt.Sprintf("server on CPU %s, load on CPU %s (taskset)", o.serverCPU, o.loadCPU)
}

// row is one peer's line of the table.
type row struct {
	peer                 peer
	handshake, echo, mem summary
	// Server CPU per operation, per-pair ratios wsauth/peer: less moved
	// than rates by a neighbour's load, which takes CPU time from a run
	// but adds little to what each operation costs.
	handshakeCPU, echoCPU summary
	// Server CPU per handshake and its share in the kernel, over all runs.
	cpuA, cpuB time.Duration
	sysA, sysB float64
	memA, memB []float64 // KiB per connection, per measurement
}

// argv returns the command line of wsauth or of peer p.
func (e *env) argv(p *peer) []string {
	if p == nil {
		a := []string{e.o.wsauth, "-addr", "127.0.0.1:0", "-introspect-url", e.svcURL, "-client-id", "wsauth",
			"-max-conns", strconv.Itoa(max(10_000, e.o.idleConns+1000))}
		return pinned(e.o.serverCPU, append(a, e.o.wsauthFlags...))
	}
	bin := p.path
	var a []string
	if bin == "" {
		bin, a = e.load.self, []string{"xnet"}
	}
	a = append([]string{bin}, a...)
	return pinned(e.o.serverCPU, append(a, "-addr", "127.0.0.1:0", "-introspect-url", e.svcURL, "-client-id", "wsauth"))
}

func (e *env) start(p *peer) (*server, error) {
	name := "wsauth"
	if p != nil {
		name = p.name
	}
	return startServer(name, e.argv(p), []string{"WSAUTH_CLIENT_SECRET=" + e.secret})
}

// comparePeer measures every figure for wsauth and p. It returns the
// wsauth logs it kept, for checkLogs.
func (e *env) comparePeer(ctx context.Context, p peer, stdout io.Writer) (row, []string, error) {
	o := e.o
	r := row{peer: p}
	var logs []string
	fmt.Fprintf(stdout, "\n%s:\n", p.name)
	if o.measures("handshake") || o.measures("echo") {
		a, err := e.start(nil)
		if err != nil {
			return r, logs, err
		}
		logs = append(logs, a.logPath)
		defer a.stop()
		b, err := e.start(&p)
		if err != nil {
			return r, logs, err
		}
		defer func() { b.stop(); b.remove() }()

		for _, fig := range []string{"handshake", "echo"} {
			if !o.measures(fig) {
				continue
			}
			conns := o.workers
			if fig == "echo" {
				conns = o.echoConns
			}
			args := []string{"-mode", fig, "-duration", o.run.String(), "-conns", strconv.Itoa(conns)}
			// One run each first, not counted: caches, pools and the heap
			// reach their working size.
			for _, s := range []*server{a, b} {
				if _, err := e.measureRate(ctx, s, args); err != nil {
					return r, logs, err
				}
			}
			var ra, rb, ca, cb []float64 // rates, and server CPU per operation
			var cpu [2]struct{ user, sys time.Duration }
			var ops [2]int64
			for i := range o.pairs {
				order := []int{0, 1}
				if i%2 == 1 {
					order = []int{1, 0} // neither side always goes first
				}
				var res [2]rateResult
				for _, k := range order {
					s := []*server{a, b}[k]
					if res[k], err = e.measureRate(ctx, s, args); err != nil {
						return r, logs, err
					}
					cpu[k].user += res[k].user
					cpu[k].sys += res[k].sys
					ops[k] += res[k].ops
				}
				ra, rb = append(ra, res[0].rate), append(rb, res[1].rate)
				ca, cb = append(ca, res[0].cpuPerOp()), append(cb, res[1].cpuPerOp())
				fmt.Fprintf(stdout, "  %s pair %d: wsauth %.0f/s, %s %.0f/s\n", fig, i+1, res[0].rate, p.name, res[1].rate)
			}
			sm, err := summarize(ra, rb)
			if err != nil {
				return r, logs, fmt.Errorf("%s: %w", fig, err)
			}
			cs, err := summarize(ca, cb)
			if err != nil {
				return r, logs, fmt.Errorf("%s CPU: %w", fig, err)
			}
			if fig == "handshake" {
				r.handshake, r.handshakeCPU = sm, cs
				r.cpuA, r.sysA = perOp(cpu[0].user, cpu[0].sys, ops[0])
				r.cpuB, r.sysB = perOp(cpu[1].user, cpu[1].sys, ops[1])
			} else {
				r.echo, r.echoCPU = sm, cs
			}
		}
		a.stop()
		b.stop()
	}
	if o.measures("memory") {
		for i := range o.memPairs {
			order := []*peer{nil, &p}
			if i%2 == 1 {
				order = []*peer{&p, nil}
			}
			for _, q := range order {
				kib, log, err := e.measureMemory(ctx, q)
				if log != "" {
					logs = append(logs, log)
				}
				if err != nil {
					return r, logs, err
				}
				if q == nil {
					r.memA = append(r.memA, kib)
				} else {
					r.memB = append(r.memB, kib)
				}
			}
			fmt.Fprintf(stdout, "  memory pair %d: wsauth %.1f KiB/conn, %s %.1f KiB/conn (%d held)\n",
				i+1, r.memA[i], p.name, r.memB[i], o.idleConns)
		}
		sm, err := summarize(r.memA, r.memB)
		if err != nil {
			return r, logs, fmt.Errorf("memory: %w", err)
		}
		r.mem = sm
	}
	return r, logs, nil
}

// perOp divides CPU time over operations: time per operation and the
// kernel's share of it.
func perOp(user, sys time.Duration, ops int64) (time.Duration, float64) {
	if ops == 0 || user+sys == 0 {
		return 0, 0
	}
	return (user + sys) / time.Duration(ops), float64(sys) / float64(user+sys)
}

// rateResult is one run: its rate, and the server's CPU time over it.
type rateResult struct {
	rate      float64
	ops       int64
	user, sys time.Duration
}

// cpuPerOp is the server's CPU time per operation, in seconds.
func (r rateResult) cpuPerOp() float64 {
	if r.ops == 0 {
		return 0
	}
	return (r.user + r.sys).Seconds() / float64(r.ops)
}

// measureRate runs one load against s. A run with any failure is an error:
// its rate would not be comparable.
func (e *env) measureRate(ctx context.Context, s *server, args []string) (rateResult, error) {
	u0, s0, err := cpuTime(s.pid())
	if err != nil {
		return rateResult{}, err
	}
	res, err := e.load.run(ctx, s.url, e.token, args...)
	if err != nil {
		return rateResult{}, fmt.Errorf("%s: %w", s.name, err)
	}
	u1, s1, err := cpuTime(s.pid())
	if err != nil {
		return rateResult{}, err
	}
	if res.Failures > 0 {
		return rateResult{}, fmt.Errorf("%s: %d failures in a run (%v), the first: %s", s.name, res.Failures, args, res.FirstFailure)
	}
	if res.Seconds <= 0 {
		return rateResult{}, fmt.Errorf("%s: empty run", s.name)
	}
	return rateResult{rate: float64(res.Ops) / res.Seconds, ops: res.Ops, user: u1 - u0, sys: s1 - s0}, nil
}

// measureMemory starts a fresh server, opens and closes one connection per
// idle token (so that the caches are filled and the code paths warm), reads
// its RSS, holds the idle connections, reads its RSS again after they
// settle, and returns KiB per connection. It returns the server's log path
// for wsauth.
func (e *env) measureMemory(ctx context.Context, p *peer) (float64, string, error) {
	s, err := e.start(p)
	if err != nil {
		return 0, "", err
	}
	log := ""
	if p == nil {
		log = s.logPath
	} else {
		defer s.remove()
	}
	defer s.stop()
	warm, _, err := e.load.hold(ctx, s.url, e.tokens, len(e.tokens))
	if err != nil {
		return 0, log, fmt.Errorf("%s: warming up: %w", s.name, err)
	}
	if r, err := warm.release(); err != nil || r.Failures > 0 {
		return 0, log, fmt.Errorf("%s: warming up: %v %s", s.name, err, r.FirstFailure)
	}
	before, err := settledRSS(s.pid())
	if err != nil {
		return 0, log, err
	}
	h, r, err := e.load.hold(ctx, s.url, e.tokens, e.o.idleConns)
	if err != nil {
		return 0, log, fmt.Errorf("%s: %w", s.name, err)
	}
	held, rerr := settledRSS(s.pid())
	last, err := h.release()
	switch {
	case r.Failures > 0 || r.Opened != e.o.idleConns:
		return 0, log, fmt.Errorf("%s: held %d of %d connections; first failure: %s", s.name, r.Opened, e.o.idleConns, r.FirstFailure)
	case rerr != nil:
		return 0, log, rerr
	case err != nil || last.Failures > r.Failures:
		return 0, log, fmt.Errorf("%s: closing the idle connections: %v %s", s.name, err, last.FirstFailure)
	}
	return float64(held-before) / float64(e.o.idleConns), log, nil
}

// settledRSS reads the RSS of pid until two readings 250 ms apart agree
// within 0.5 % (or 3 s pass), so that the last connections' buffers and
// goroutines are in.
func settledRSS(pid int) (int64, error) {
	prev, err := rssKiB(pid)
	if err != nil {
		return 0, err
	}
	for range 12 {
		time.Sleep(250 * time.Millisecond) // sampling interval, not synchronization
		cur, err := rssKiB(pid)
		if err != nil {
			return 0, err
		}
		if d := cur - prev; d*200 <= cur && -d*200 <= cur {
			return cur, nil
		}
		prev = cur
	}
	return prev, nil
}

// checkLogs fails if a wsauth log holds a token: a benchmark must not hide
// a leak the tests would catch.
func checkLogs(paths, tokens []string) error {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, tok := range tokens {
			if strings.Contains(string(b), tok) {
				return fmt.Errorf("wsauth's log %s holds a token", p)
			}
		}
	}
	return nil
}

// printTable prints the table in docs/PERFORMANCE.md's shape.
func printTable(w io.Writer, o options, rows []row) {
	fmt.Fprintf(w, "\n| wsauth vs | handshake | echo | idle memory per connection (RSS, %s held) |\n|---|---|---|---|\n",
		thousands(o.idleConns))
	for _, r := range rows {
		cells := []string{r.peer.title(), "–", "–", "–"}
		if o.measures("handshake") {
			cells[1] = r.handshake.ratioString()
		}
		if o.measures("echo") {
			cells[2] = r.echo.ratioString()
		}
		if o.measures("memory") {
			cells[3] = fmt.Sprintf("%.1f vs %.1f KiB (%s)", r.mem.medianA, r.mem.medianB, r.mem.ratioString())
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintf(w, "\nMedians of the per-pair ratios wsauth/peer, interquartile range in brackets; memory: the medians of each side, then the ratio.\n")
	for _, r := range rows {
		if o.measures("handshake") {
			fmt.Fprintf(w, "%s: handshakes %.0f/s vs %.0f/s; server CPU per handshake %.0f µs (%.0f %% in the kernel) vs %.0f µs (%.0f %%), per-pair ratio %s\n",
				r.peer.name, r.handshake.medianA, r.handshake.medianB,
				float64(r.cpuA)/1e3, 100*r.sysA, float64(r.cpuB)/1e3, 100*r.sysB, r.handshakeCPU.ratioString())
		}
		if o.measures("echo") {
			fmt.Fprintf(w, "%s: echoes %.0f/s vs %.0f/s; server CPU per echo, per-pair ratio %s\n",
				r.peer.name, r.echo.medianA, r.echo.medianB, r.echoCPU.ratioString())
		}
	}
}

// thousands writes n with commas: 2,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// shellQuote joins argv as a shell would read it back.
func shellQuote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:,") == "" {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
