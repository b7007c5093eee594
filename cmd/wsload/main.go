// Command wsload opens many authenticated WebSocket connections to a wsauth
// server (or a port of it), holds them, sends messages at a rate, and
// reports handshakes per second, handshake latency, failures by kind, the
// close codes the server sent, and the server's memory when its admin
// listener (/debug/vars, expvar) or its process id is given.
//
// Tokens come from a fake token service's admin API (POST /admin/tokens) or
// from -token. For example, with the server and the fake started as in
// docs/PERFORMANCE.md ("In process"):
//
//	wsload -url http://127.0.0.1:8080 -tokensvc http://127.0.0.1:8081 \
//	    -conns 10000 -tokens 100 -hold 30s -msg-rate 1000 \
//	    -admin http://127.0.0.1:6060/debug/vars
//
// With -spawn it runs a whole scale test by itself: a fake token service,
// the wsauth binary given, and -procs wsload processes sharing the
// connections; it holds them through recheck sweeps, stops the server with
// SIGTERM, and checks that every connection got 1001 in time (see
// coordinate.go and docs/PERFORMANCE.md):
//
//	wsload -spawn bin/wsauth -conns 19000 -procs 2 -tokens 1000 \
//	    -recheck 15s -hold 40s -msg-rate 1000
//
// Before the first connection it checks the limits the run needs (its own
// open-files limit, which it raises to the hard one; the ephemeral port
// range; the server's open-files limit when it knows the server's process)
// and says which one stops it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wsload:", err)
		os.Exit(1)
	}
}

type options struct {
	url           string
	tokensvc      string
	tokens        []string
	nTokens       int
	ttl           time.Duration
	subjectPrefix string
	credential    string
	origin        string
	conns         int
	concurrency   int
	hold          time.Duration
	msgRate       float64
	admin         string
	timeout       time.Duration
	sources       []net.IP
	serverPID     int
	untilClosed   bool
	jsonOut       bool

	// The coordinator's (-spawn).
	spawn           string
	procs           int
	serverFlags     []string
	recheck         time.Duration
	shutdownTimeout time.Duration
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	var tokens, sources string
	fs := flag.NewFlagSet("wsload", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "the server; connections go to its /ws")
	fs.StringVar(&o.tokensvc, "tokensvc", "", "a fake token service whose POST /admin/tokens issues the tokens")
	fs.StringVar(&tokens, "token", "", "comma-separated tokens to use instead of issuing them")
	fs.IntVar(&o.nTokens, "tokens", 100, "distinct tokens to issue; connections share them round-robin")
	fs.DurationVar(&o.ttl, "ttl", time.Hour, "lifetime of issued tokens")
	fs.StringVar(&o.subjectPrefix, "subject-prefix", "load-", "issued tokens' subjects are this and a number")
	fs.StringVar(&o.credential, "credential", "bearer", "how to carry the token: bearer, query, subprotocol or cookie")
	fs.StringVar(&o.origin, "origin", "", "Origin header to send (none by default, as a non-browser client)")
	fs.IntVar(&o.conns, "conns", 100, "connections to open and hold")
	fs.IntVar(&o.concurrency, "concurrency", 50, "handshakes in flight at once (per process)")
	fs.DurationVar(&o.hold, "hold", 10*time.Second, "how long to hold the connections once opened")
	fs.Float64Var(&o.msgRate, "msg-rate", 0, "messages per second, over all connections, while holding")
	fs.StringVar(&o.admin, "admin", "", "the server's /debug/vars URL, to report its memory")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "bound on one handshake, one write and the closing handshake")
	fs.StringVar(&sources, "sources", "", "comma-separated loopback addresses to dial from, round-robin (each has its own ephemeral ports); default: the kernel's choice")
	fs.IntVar(&o.serverPID, "server-pid", 0, "the server's process id on this machine: its open-files limit is checked and its RSS reported")
	fs.BoolVar(&o.untilClosed, "until-closed", false, "hold until the server closes every connection (a shutdown) or -hold passes; closes before then are still failures")
	fs.BoolVar(&o.jsonOut, "json", false, "print JSON lines (opened, then done) instead of the report, for -spawn")
	fs.StringVar(&o.spawn, "spawn", "", "run the whole test: start this wsauth binary, a fake token service and -procs load processes (-url and -tokensvc are then ignored)")
	fs.IntVar(&o.procs, "procs", 1, "with -spawn: load processes sharing the connections")
	fs.Func("server-flag", "with -spawn: a flag for wsauth (repeatable), e.g. -server-flag=-max-conns-per-subject=0", func(v string) error {
		o.serverFlags = append(o.serverFlags, v)
		return nil
	})
	fs.DurationVar(&o.recheck, "recheck", 15*time.Second, "with -spawn: wsauth's -recheck; keep it below -hold so that sweeps happen while holding")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "with -spawn: wsauth's -shutdown-timeout, within which every connection must get 1001")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	o.tokens = splitList(tokens)
	for _, s := range splitList(sources) {
		ip := net.ParseIP(s)
		if ip == nil || !ip.IsLoopback() {
			return o, fmt.Errorf("-sources: %q is not a loopback address (this tool loads loopback only)", s)
		}
		o.sources = append(o.sources, ip)
	}
	switch {
	case o.spawn == "" && len(o.tokens) == 0 && o.tokensvc == "":
		return o, errors.New("give -tokensvc (a fake token service) or -token, or -spawn")
	case o.spawn != "" && len(o.tokens) > 0:
		return o, errors.New("-spawn issues its own tokens: drop -token")
	case o.credentials() == nil:
		return o, fmt.Errorf("-credential %q: want bearer, query, subprotocol or cookie", o.credential)
	case o.conns < 1 || o.concurrency < 1 || o.nTokens < 1 || o.procs < 1:
		return o, errors.New("-conns, -concurrency, -tokens and -procs must be at least 1")
	case o.spawn != "" && o.nTokens < o.procs:
		return o, fmt.Errorf("-tokens %d: each of the %d processes needs a token", o.nTokens, o.procs)
	case o.spawn != "" && o.conns < o.procs:
		return o, fmt.Errorf("-conns %d: fewer than the %d processes", o.conns, o.procs)
	case o.spawn != "" && o.recheck >= o.hold:
		return o, fmt.Errorf("-recheck %v is not shorter than -hold %v: no sweep would happen while holding", o.recheck, o.hold)
	case o.hold <= 0 || o.timeout <= 0 || o.msgRate < 0:
		return o, errors.New("-hold and -timeout must be positive and -msg-rate not negative")
	}
	return o, nil
}

func (o options) credentials() func(*url.URL, http.Header, string) { return credentials[o.credential] }

// stats is what the load saw.
type stats struct {
	mu         sync.Mutex
	handshakes []time.Duration // of the successful ones
	failures   map[string]int  // handshake failures by kind
	closeCodes map[int]int     // close frames the server sent first
	dropped    int             // connections lost without a close frame
	rtts       []time.Duration // message to echo
	answered   int             // our closes the server answered

	firstClose, lastClose time.Time // of the server's close frames

	sent, echoed  atomic.Int64
	serverClosing atomic.Bool // a close frame came from the server: stop sending
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args, stdout)
	if err != nil {
		return err
	}
	if o.spawn != "" {
		return coordinate(ctx, o, stdout)
	}
	return load(ctx, o, stdout)
}

// checkLimits checks, before any connection, what this process's share of
// a run needs; totalConns is the whole run's, from every process.
func checkLimits(o options, totalConns int) error {
	soft, hard, err := raiseOpenFiles()
	if err != nil {
		return fmt.Errorf("raising the open-files limit: %w", err)
	}
	if err := checkOwnFiles(o.conns, soft, hard); err != nil {
		return err
	}
	if lo, hi, err := portRange(); err == nil {
		if err := checkPorts(totalConns, len(o.sources), lo, hi); err != nil {
			return err
		}
	}
	if o.serverPID != 0 {
		soft, hard, err := procOpenFiles(o.serverPID)
		if err != nil {
			return fmt.Errorf("-server-pid: %w", err)
		}
		// The server may ask the token system about as many tokens at
		// once as there are handshakes in flight.
		if err := checkServerFiles(o.serverPID, soft, hard, totalConns); err != nil {
			return err
		}
	}
	return nil
}

// load is one load process: it opens o.conns connections, holds them with
// messages, then closes them (or, with -until-closed, waits for the server
// to), and reports.
func load(ctx context.Context, o options, stdout io.Writer) error {
	if err := checkLimits(o, o.conns); err != nil {
		return err
	}
	base, err := url.Parse(o.url)
	if err != nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "ws") {
		return fmt.Errorf("-url %q: want http://host:port or ws://host:port (this tool speaks no TLS)", o.url)
	}
	target := *base
	target.Scheme, target.Path = "http", "/ws"

	toks := o.tokens
	if len(toks) == 0 {
		if toks, err = issueTokens(ctx, o.tokensvc, o.subjectPrefix, o.nTokens, o.ttl); err != nil {
			return err
		}
	}
	if !o.jsonOut {
		fmt.Fprintf(stdout, "wsload: %d connections to %s (%s), %d tokens, %d handshakes in flight\n",
			o.conns, target.String(), o.credential, len(toks), o.concurrency)
	}

	st := &stats{failures: map[string]int{}, closeCodes: map[int]int{}}
	var before, held, end serverMem
	before = readServerMem(o)

	// Open.
	conns := make([]*conn, o.conns)
	var closing atomic.Bool
	var readers sync.WaitGroup
	jobs := make(chan int)
	var workers sync.WaitGroup
	start := time.Now()
	for range o.concurrency {
		workers.Go(func() {
			for i := range jobs {
				var src net.IP
				if len(o.sources) > 0 {
					src = o.sources[i%len(o.sources)]
				}
				t0 := time.Now()
				c, err := dial(&target, o.credential, toks[i%len(toks)], o.origin, src, o.timeout)
				st.mu.Lock()
				if err != nil {
					var f *failure
					if errors.As(err, &f) {
						st.failures[f.kind]++
					} else {
						st.failures["other"]++
					}
				} else {
					st.handshakes = append(st.handshakes, time.Since(t0))
				}
				st.mu.Unlock()
				if c != nil {
					conns[i] = c
					readers.Go(func() { readLoop(c, st, &closing, o.timeout) })
				}
			}
		})
	}
feed:
	for i := range o.conns {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	workers.Wait()
	rampEnd := time.Now()
	ramp := rampEnd.Sub(start)
	open := slices.DeleteFunc(conns, func(c *conn) bool { return c == nil })
	allEnded := make(chan struct{})
	go func() { readers.Wait(); close(allEnded) }()
	if o.jsonOut {
		writeJSON(stdout, workerReport{Event: "opened", Opened: len(open), RampStart: start.UnixNano(), RampEnd: rampEnd.UnixNano()})
	}

	// Hold, sending messages at the rate asked.
	held = readServerMem(o)
	// Messages go out on a 1 ms tick, as many as the rate owes since the
	// hold began: a tick missed on a loaded machine is made up on the next.
	holdStart := time.Now()
	holdUntil := time.After(o.hold)
	var tick <-chan time.Time
	if o.msgRate > 0 && len(open) > 0 {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	var ended <-chan struct{}
	if o.untilClosed {
		ended = allEnded
	}
	next := 0
hold:
	for {
		select {
		case <-holdUntil:
			break hold
		case <-ctx.Done():
			break hold
		case <-ended:
			break hold
		case now := <-tick:
			if st.serverClosing.Load() {
				tick = nil // the server is closing: no message can be answered
				continue
			}
			for owed := int(o.msgRate*now.Sub(holdStart).Seconds()) - next; owed > 0; owed-- {
				c := open[next%len(open)]
				next++
				msg := "t=" + strconv.FormatInt(time.Now().UnixNano(), 10)
				if c.writeFrame(opText, []byte(msg), o.timeout) == nil {
					st.sent.Add(1)
				}
			}
		}
	}
	end = readServerMem(o)

	// Close politely: 1000, then wait for the server's answer; unless the
	// server has closed them all.
	select {
	case <-allEnded:
	default:
		closing.Store(true)
		sem := make(chan struct{}, o.concurrency)
		for _, c := range open {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				c.writeFrame(opClose, []byte{0x03, 0xe8}, o.timeout)
				c.nc.SetReadDeadline(time.Now().Add(o.timeout))
			}()
		}
		for range o.concurrency {
			sem <- struct{}{}
		}
	}
	<-allEnded

	st.mu.Lock()
	nfail, nclosed, dropped := sumValues(st.failures), sumValues(st.closeCodes), st.dropped
	wrongCloses := nclosed
	if o.untilClosed {
		wrongCloses -= st.closeCodes[1001]
	}
	st.mu.Unlock()
	if o.jsonOut {
		writeJSON(stdout, st.report(len(open), start, rampEnd))
	} else {
		report(stdout, o, st, len(open), ramp, before, held, end)
	}
	if nfail > 0 || dropped > 0 || wrongCloses > 0 {
		return fmt.Errorf("%d handshakes failed, %d connections dropped, %d closed by the server", nfail, dropped, wrongCloses)
	}
	if o.untilClosed && nclosed < len(open) {
		return fmt.Errorf("the server closed %d of %d connections before -hold %v passed", nclosed, len(open), o.hold)
	}
	return nil
}

// workerReport is a load process's JSON line for the coordinator: "opened"
// when its connections are open, "done" at the end.
type workerReport struct {
	Event      string         `json:"event"`
	Opened     int            `json:"opened"`
	RampStart  int64          `json:"ramp_start"` // Unix ns
	RampEnd    int64          `json:"ramp_end"`
	Handshakes []int64        `json:"handshakes_ns,omitempty"`
	RTTs       []int64        `json:"rtts_ns,omitempty"`
	Failures   map[string]int `json:"failures,omitempty"`
	CloseCodes map[string]int `json:"close_codes,omitempty"`
	Dropped    int            `json:"dropped"`
	Answered   int            `json:"answered"`
	Sent       int64          `json:"sent"`
	Echoed     int64          `json:"echoed"`
	FirstClose int64          `json:"first_close,omitempty"` // Unix ns of the server's first close frame
	LastClose  int64          `json:"last_close,omitempty"`
}

func (st *stats) report(opened int, start, rampEnd time.Time) workerReport {
	st.mu.Lock()
	defer st.mu.Unlock()
	r := workerReport{Event: "done", Opened: opened, RampStart: start.UnixNano(), RampEnd: rampEnd.UnixNano(),
		Failures: st.failures, CloseCodes: map[string]int{}, Dropped: st.dropped, Answered: st.answered,
		Sent: st.sent.Load(), Echoed: st.echoed.Load()}
	for _, d := range st.handshakes {
		r.Handshakes = append(r.Handshakes, int64(d))
	}
	for _, d := range st.rtts {
		r.RTTs = append(r.RTTs, int64(d))
	}
	for c, n := range st.closeCodes {
		r.CloseCodes[strconv.Itoa(c)] = n
	}
	if !st.firstClose.IsZero() {
		r.FirstClose, r.LastClose = st.firstClose.UnixNano(), st.lastClose.UnixNano()
	}
	return r
}

func writeJSON(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	w.Write(append(b, '\n'))
}

// readLoop reads a connection's frames until it closes: echoes give round
// trip times, pings get pongs, a close is recorded and answered.
func readLoop(c *conn, st *stats, closing *atomic.Bool, timeout time.Duration) {
	defer c.nc.Close()
	for {
		op, p, err := c.readFrame()
		if err != nil {
			if !closing.Load() {
				st.mu.Lock()
				st.dropped++
				st.mu.Unlock()
			}
			return
		}
		switch op {
		case opText:
			if i := bytes.Index(p, []byte(`"data":"t=`)); i >= 0 {
				rest := p[i+len(`"data":"t=`):]
				if j := bytes.IndexByte(rest, '"'); j > 0 {
					if ns, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
						rtt := time.Since(time.Unix(0, ns))
						st.echoed.Add(1)
						st.mu.Lock()
						st.rtts = append(st.rtts, rtt)
						st.mu.Unlock()
					}
				}
			}
		case opPing:
			c.writeFrame(opPong, p, timeout)
		case opClose:
			now := time.Now()
			st.mu.Lock()
			if closing.Load() {
				st.answered++
			} else {
				st.closeCodes[closeCode(p)]++
				st.serverClosing.Store(true)
				if st.firstClose.IsZero() {
					st.firstClose = now
				}
				st.lastClose = now
			}
			st.mu.Unlock()
			if !closing.Load() {
				c.writeFrame(opClose, p[:min(len(p), 2)], timeout) // §5.5.1: echo the code
			}
			return
		}
	}
}

// issueTokens asks the fake token service for n tokens with scopes api and
// ws, for subjects prefix0 … prefix(n-1).
func issueTokens(ctx context.Context, svc, prefix string, n int, ttl time.Duration) ([]string, error) {
	toks := make([]string, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range toks {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			body, _ := json.Marshal(map[string]any{"sub": prefix + strconv.Itoa(i), "scope": "api ws", "ttl_seconds": int64(ttl.Seconds())})
			req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(svc, "/")+"/admin/tokens", bytes.NewReader(body))
			if err != nil {
				errs[i] = err
				return
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			var reply struct {
				Token string `json:"token"`
			}
			if resp.StatusCode != http.StatusCreated {
				errs[i] = fmt.Errorf("POST /admin/tokens: %s", resp.Status)
			} else if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&reply); err != nil || reply.Token == "" {
				errs[i] = fmt.Errorf("POST /admin/tokens: undecodable reply: %v", err)
			}
			toks[i] = reply.Token
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("issuing tokens: %w", err)
	}
	return toks, nil
}

// serverVars is what wsload reads from the server's /debug/vars.
type serverVars struct {
	Memstats struct {
		HeapInuse  uint64
		StackInuse uint64
		Sys        uint64
	} `json:"memstats"`
	Wsauth *struct {
		OpenConns  int `json:"open_conns"`
		Goroutines int `json:"goroutines"`
	} `json:"wsauth"`
}

func readVars(u string) (*serverVars, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, fmt.Errorf("reading the server's vars: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the server's vars: %s", resp.Status)
	}
	var v serverVars
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&v); err != nil {
		return nil, fmt.Errorf("reading the server's vars: %w", err)
	}
	return &v, nil
}

func (v *serverVars) inuse() uint64 { return v.Memstats.HeapInuse + v.Memstats.StackInuse }

// serverMem is the server's memory at one moment, from what the tool was
// told about it: its /debug/vars, its process.
type serverMem struct {
	vars *serverVars
	rss  uint64 // bytes; 0 when unknown
	err  error
}

func readServerMem(o options) serverMem {
	var m serverMem
	if o.admin != "" {
		m.vars, m.err = readVars(o.admin)
	}
	if o.serverPID != 0 {
		var err error
		m.rss, err = processRSS(o.serverPID)
		m.err = errors.Join(m.err, err)
	}
	return m
}

func report(w io.Writer, o options, st *stats, open int, ramp time.Duration, before, held, end serverMem) {
	st.mu.Lock()
	defer st.mu.Unlock()
	nfail := sumValues(st.failures)
	fmt.Fprintf(w, "handshakes: %d ok, %d failed in %v: %.0f/s\n", open, nfail, ramp.Round(time.Millisecond),
		float64(open)/ramp.Seconds())
	if len(st.handshakes) > 0 {
		p50, p99, pmax := percentiles(st.handshakes)
		fmt.Fprintf(w, "handshake latency: p50 %v, p99 %v, max %v\n", p50, p99, pmax)
	}
	fmt.Fprintf(w, "failures: %s\n", countsString(st.failures))
	fmt.Fprintf(w, "held %d connections for %v; messages: %d sent, %d echoed", open, o.hold, st.sent.Load(), st.echoed.Load())
	if len(st.rtts) > 0 {
		p50, p99, pmax := percentiles(st.rtts)
		fmt.Fprintf(w, ", round trip p50 %v, p99 %v, max %v", p50, p99, pmax)
	}
	fmt.Fprintln(w)
	codes := map[string]int{}
	for c, n := range st.closeCodes {
		codes[strconv.Itoa(c)] = n
	}
	fmt.Fprintf(w, "closed by the server: %s; dropped without a close frame: %d\n", countsString(codes), st.dropped)
	fmt.Fprintf(w, "our closes (1000) answered by the server: %d of %d\n", st.answered, open)
	for _, s := range []struct {
		name string
		m    serverMem
	}{{"before", before}, {"held", held}, {"end of hold", end}} {
		if s.m.err != nil {
			fmt.Fprintf(w, "server %s: %v\n", s.name, s.m.err)
		}
		if v := s.m.vars; v != nil {
			fmt.Fprintf(w, "server %s: heap in use %.1f MiB, stacks %.1f MiB, sys %.1f MiB", s.name,
				mib(v.Memstats.HeapInuse), mib(v.Memstats.StackInuse), mib(v.Memstats.Sys))
			if v.Wsauth != nil {
				fmt.Fprintf(w, ", open_conns %d, goroutines %d", v.Wsauth.OpenConns, v.Wsauth.Goroutines)
			}
			if before.vars != nil && s.name != "before" && open > 0 {
				fmt.Fprintf(w, "; %.1f KiB/conn over before (heap+stacks, no forced GC)",
					(float64(v.inuse())-float64(before.vars.inuse()))/1024/float64(open))
			}
			fmt.Fprintln(w)
		}
		if s.m.rss != 0 {
			fmt.Fprintf(w, "server %s: RSS %.1f MiB", s.name, mib(s.m.rss))
			if before.rss != 0 && s.name != "before" && open > 0 {
				fmt.Fprintf(w, "; %.1f KiB/conn over before", (float64(s.m.rss)-float64(before.rss))/1024/float64(open))
			}
			fmt.Fprintln(w)
		}
	}
}

func percentiles(d []time.Duration) (p50, p99, pmax time.Duration) {
	slices.Sort(d)
	at := func(q int) time.Duration { return d[min(len(d)-1, len(d)*q/100)].Round(10 * time.Microsecond) }
	return at(50), at(99), d[len(d)-1].Round(10 * time.Microsecond)
}

func countsString(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func sumValues[K comparable](m map[K]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
