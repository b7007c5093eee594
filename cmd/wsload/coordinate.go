package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
)

// The coordinator (-spawn) runs a whole scale test on one machine:
//
//  1. checks the limits that need no server (its processes' open files,
//     the ephemeral ports for every connection);
//  2. starts a fake token service (in this process) and the wsauth binary,
//     with -recheck, -shutdown-timeout and -max-conns set for the run, and
//     checks the server's open-files limit;
//  3. starts -procs load processes (this binary with -until-closed -json),
//     each issuing its share of the tokens and opening its share of the
//     connections;
//  4. once all are open, holds for -hold, sending -msg-rate messages and
//     watching the fake's /admin/stats to count introspections per sweep;
//  5. sends wsauth SIGTERM and checks that every connection got 1001, that
//     wsauth exited cleanly within -shutdown-timeout, and sums it all up.

// serverLogRe finds wsauth's address in its log, and the count it reports
// when it has closed its WebSockets on shutdown.
var (
	listeningRe   = regexp.MustCompile(`msg="wsauth listening".* url=(http://[0-9.:\[\]]+)`)
	closedCountRe = regexp.MustCompile(`msg="closed WebSocket connections" count=(\d+)`)
)

func coordinate(ctx context.Context, o options, stdout io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	shares := split(o.conns, o.procs)
	tokenShares := split(o.nTokens, o.procs)
	// Limits: each load process holds its share; every connection takes an
	// ephemeral port towards the one server address.
	soft, hard, err := raiseOpenFiles()
	if err != nil {
		return fmt.Errorf("raising the open-files limit: %w", err)
	}
	if err := checkOwnFiles(shares[0], soft, hard); err != nil {
		return err
	}
	lo, hi, err := portRange()
	if err == nil {
		err = checkPorts(o.conns, len(o.sources), lo, hi)
	}
	if err != nil {
		return err
	}

	// The fake token service, in this process.
	var key [16]byte
	rand.Read(key[:])
	secret := hex.EncodeToString(key[:])
	svc := faketokensvc.New(faketokensvc.Options{ClientID: "wsauth", ClientSecret: secret})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fake := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go fake.Serve(ln)
	defer fake.Close()
	svcURL := "http://" + ln.Addr().String()

	// wsauth.
	srv, err := startWsauth(o, svcURL, secret)
	if err != nil {
		return err
	}
	defer srv.kill()
	ssoft, shard, err := procOpenFiles(srv.pid())
	if err != nil {
		return err
	}
	if err := checkServerFiles(srv.pid(), ssoft, shard, o.conns); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wsload: %d connections from %d processes to %s (pid %d, %s), %d tokens, recheck %v, hold %v, %.0f msg/s\n",
		o.conns, o.procs, o.spawn, srv.pid(), srv.url, o.nTokens, o.recheck, o.hold, o.msgRate)
	fmt.Fprintf(stdout, "limits: load processes %d open files each (hard %d) for %d connections; ephemeral ports %d–%d × %d source address(es); server %d open files (hard %d) for %d + up to %d to the token system: enough\n",
		soft, hard, shares[0], lo, hi, max(1, len(o.sources)), ssoft, shard, o.conns, serverOutbound)

	rssBefore, err := processRSS(srv.pid())
	if err != nil {
		return err
	}
	introBefore := svc.Introspections()

	// The load processes.
	var sources []string
	for _, ip := range o.sources {
		sources = append(sources, ip.String())
	}
	workers := make([]*worker, o.procs)
	for k := range o.procs {
		args := []string{"-url", srv.url, "-tokensvc", svcURL, "-tokens", strconv.Itoa(tokenShares[k]),
			"-subject-prefix", fmt.Sprintf("load-%d-", k), "-ttl", o.ttl.String(), "-credential", o.credential,
			"-conns", strconv.Itoa(shares[k]), "-concurrency", strconv.Itoa(o.concurrency),
			"-msg-rate", strconv.FormatFloat(o.msgRate/float64(o.procs), 'f', -1, 64),
			"-timeout", o.timeout.String(), "-server-pid", strconv.Itoa(srv.pid()),
			// A bound, should the coordinator vanish: hold, shutdown, margin.
			"-hold", (o.hold + o.shutdownTimeout + time.Minute).String(),
			"-until-closed", "-json"}
		if o.origin != "" {
			args = append(args, "-origin", o.origin)
		}
		if len(sources) > 0 {
			args = append(args, "-sources", strings.Join(sources, ","))
		}
		if workers[k], err = startWorker(ctx, self, args); err != nil {
			return err
		}
	}
	defer func() {
		for _, w := range workers {
			if w != nil {
				w.kill()
			}
		}
	}()
	opened := 0
	var rampStart, rampEnd int64
	for k, w := range workers {
		r, err := w.next()
		if err != nil || r.Event != "opened" {
			return fmt.Errorf("load process %d: %v %s", k, err, w.stderrTail())
		}
		opened += r.Opened
		if rampStart == 0 || r.RampStart < rampStart {
			rampStart = r.RampStart
		}
		rampEnd = max(rampEnd, r.RampEnd)
	}
	introOpened := svc.Introspections()
	rssHeld, err := settledRSS(srv.pid())
	if err != nil {
		return err
	}

	// Hold, watching the fake's count: a sweep is a burst of calls.
	fmt.Fprintf(stdout, "opened %d of %d; holding %v\n", opened, o.conns, o.hold)
	var samples []sample
	holdEnd := time.Now().Add(o.hold)
	for time.Now().Before(holdEnd) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(100*time.Millisecond, o.recheck/8)): // sampling interval
		}
		samples = append(samples, sample{time.Now(), svc.Introspections()})
	}
	rssEnd, _ := processRSS(srv.pid())

	// Shutdown.
	sigterm := time.Now()
	srv.cmd.Process.Signal(syscall.SIGTERM)
	exitIn, exitErr := srv.wait(o.shutdownTimeout + 10*time.Second)
	reports := make([]workerReport, len(workers))
	var workerErrs []error
	for k, w := range workers {
		r, err := w.next()
		if err == nil && r.Event != "done" {
			err = fmt.Errorf("unexpected %q", r.Event)
		}
		if err != nil {
			workerErrs = append(workerErrs, fmt.Errorf("load process %d: %w %s", k, err, w.stderrTail()))
		}
		reports[k] = r
		w.wait()
	}
	log, _ := os.ReadFile(srv.logPath)
	serverClosed := -1
	if m := closedCountRe.FindSubmatch(log); m != nil {
		serverClosed, _ = strconv.Atoi(string(m[1]))
	}

	sum := summarize(reports)
	sweeps := bursts(introOpened, samples, min(time.Second, o.recheck/2))
	problems := sum.problems(opened, o.conns)
	if serverClosed != opened {
		problems = append(problems, fmt.Sprintf("wsauth reports %d WebSockets closed at shutdown, not %d", serverClosed, opened))
	}
	if exitErr != nil {
		problems = append(problems, fmt.Sprintf("wsauth exited with %v after %v", exitErr, exitIn.Round(time.Millisecond)))
	}
	if exitIn > o.shutdownTimeout {
		problems = append(problems, fmt.Sprintf("wsauth took %v to stop; the timeout is %v", exitIn.Round(time.Millisecond), o.shutdownTimeout))
	}
	if sum.firstClose != 0 && sum.firstClose < sigterm.UnixNano() {
		problems = append(problems, "the server closed connections before the shutdown")
	}
	for _, err := range workerErrs {
		problems = append(problems, err.Error())
	}

	ramp := time.Duration(rampEnd - rampStart)
	fmt.Fprintf(stdout, "handshakes: %d ok, %d failed in %v: %.0f/s; latency p50 %v, p99 %v\n",
		sum.opened, sumValues(sum.failures), ramp.Round(time.Millisecond), float64(sum.opened)/ramp.Seconds(),
		pct(sum.handshakes, 50), pct(sum.handshakes, 99))
	fmt.Fprintf(stdout, "messages: %d sent, %d echoed; round trip p50 %v, p99 %v\n",
		sum.sent, sum.echoed, pct(sum.rtts, 50), pct(sum.rtts, 99))
	fmt.Fprintf(stdout, "server RSS: %.1f MiB before, %.1f MiB with all open, %.1f MiB at the end of the hold: %.1f KiB per connection\n",
		mib(rssBefore), mib(rssHeld), mib(rssEnd), (float64(rssHeld)-float64(rssBefore))/1024/float64(max(opened, 1)))
	ramped := ""
	if ramp >= o.recheck {
		ramped = ", and sweeps, as opening outlasted -recheck"
	}
	fmt.Fprintf(stdout, "introspections: %d while opening (%d distinct tokens%s); per recheck sweep during the hold: %s\n",
		introOpened-introBefore, o.nTokens, ramped, burstsString(sweeps))
	fmt.Fprintf(stdout, "failures: %s; dropped without a close frame: %d\n", countsString(sum.failures), sum.dropped)
	allClosed := "–"
	if sum.lastClose != 0 {
		allClosed = time.Duration(sum.lastClose - sigterm.UnixNano()).Round(time.Millisecond).String()
	}
	fmt.Fprintf(stdout, "shutdown: close codes %s, the last %s after SIGTERM; wsauth exited in %v (%s), reporting %d closed; -shutdown-timeout %v\n",
		countsString(sum.closeCodes), allClosed, exitIn.Round(time.Millisecond), exitString(exitErr), serverClosed, o.shutdownTimeout)
	complete := 0
	for _, b := range sweeps {
		if !b.complete {
			continue
		}
		complete++
		if b.n != o.nTokens {
			problems = append(problems, fmt.Sprintf("a sweep made %d introspections for %d distinct tokens", b.n, o.nTokens))
		}
	}
	if complete == 0 {
		problems = append(problems, "no whole recheck sweep happened during the hold: make -hold longer than twice -recheck")
	}
	if len(problems) > 0 {
		fmt.Fprintf(stdout, "result: FAIL\n  %s\n", strings.Join(problems, "\n  "))
		return errors.New("the scale test failed")
	}
	fmt.Fprintf(stdout, "result: PASS (0 failures, 1001 to all %d within %v)\n", opened, o.shutdownTimeout)
	return nil
}

// split divides n into k shares that differ by at most one.
func split(n, k int) []int {
	out := make([]int, k)
	for i := range out {
		out[i] = n / k
		if i < n%k {
			out[i]++
		}
	}
	return out
}

// spawned is the wsauth process of a scale test.
type spawned struct {
	cmd     *exec.Cmd
	url     string
	logPath string
	exited  chan struct{}
	waitErr error
}

func startWsauth(o options, svcURL, secret string) (*spawned, error) {
	f, err := os.CreateTemp("", "wsload-wsauth-*.log")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	args := []string{"-addr", "127.0.0.1:0", "-introspect-url", svcURL + "/introspect", "-client-id", "wsauth",
		"-recheck", o.recheck.String(), "-shutdown-timeout", o.shutdownTimeout.String(),
		"-max-conns", strconv.Itoa(o.conns + 1000)}
	cmd := exec.Command(o.spawn, append(args, o.serverFlags...)...)
	cmd.Env = append(os.Environ(), "WSAUTH_CLIENT_SECRET="+secret)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", o.spawn, err)
	}
	s := &spawned{cmd: cmd, logPath: f.Name(), exited: make(chan struct{})}
	go func() { s.waitErr = cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(s.logPath)
		if m := listeningRe.FindSubmatch(b); m != nil {
			s.url = string(m[1])
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s exited before listening (%v): %s", o.spawn, s.waitErr, tail(b))
		case <-time.After(20 * time.Millisecond): // polling its log, with a deadline
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, fmt.Errorf("%s logged no listening line in 15s: %s", o.spawn, tail(b))
		}
	}
}

func (s *spawned) pid() int { return s.cmd.Process.Pid }

// wait waits up to d for the server to exit and says how long it took.
func (s *spawned) wait(d time.Duration) (time.Duration, error) {
	start := time.Now()
	select {
	case <-s.exited:
		return time.Since(start), s.waitErr
	case <-time.After(d):
		s.kill()
		return time.Since(start), fmt.Errorf("still running after %v: killed", d)
	}
}

// kill ends the server if it still runs; its log goes too.
func (s *spawned) kill() {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Kill()
		<-s.exited
	}
	os.Remove(s.logPath)
}

// worker is a load process of a scale test.
type worker struct {
	cmd    *exec.Cmd
	out    *bufio.Scanner
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
}

func startWorker(ctx context.Context, self string, args []string) (*worker, error) {
	w := &worker{cmd: exec.CommandContext(ctx, self, args...), done: make(chan struct{})}
	w.cmd.Stderr = &lockedWriter{mu: &w.mu, w: &w.stderr}
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w.out = bufio.NewScanner(stdout)
	w.out.Buffer(make([]byte, 64<<10), 256<<20) // "done" carries every latency
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *worker) next() (workerReport, error) {
	var r workerReport
	if !w.out.Scan() {
		return r, fmt.Errorf("ended without a report (%v)", w.out.Err())
	}
	return r, json.Unmarshal(w.out.Bytes(), &r)
}

func (w *worker) wait() { w.cmd.Wait(); close(w.done) }

func (w *worker) kill() {
	select {
	case <-w.done:
	default:
		w.cmd.Process.Kill()
		w.wait()
	}
}

func (w *worker) stderrTail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return tail(w.stderr.Bytes())
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// sample is the fake's introspection count at one moment.
type sample struct {
	at time.Time
	n  int64
}

// burst is the growth of the introspection count in one recheck sweep.
type burst struct {
	n        int
	complete bool // seen from its start to its end, not cut by the edge of the hold
}

// bursts splits the growth of the count after start into bursts: calls
// less than gap apart belong to one sweep.
func bursts(start int64, samples []sample, gap time.Duration) []burst {
	var out []burst
	prev := start
	var last time.Time
	for i, s := range samples {
		if s.n == prev {
			continue
		}
		if len(out) == 0 || s.at.Sub(last) > gap {
			out = append(out, burst{complete: i > 0})
		}
		b := &out[len(out)-1]
		b.n += int(s.n - prev)
		if i == len(samples)-1 {
			b.complete = false
		}
		prev, last = s.n, s.at
	}
	return out
}

func burstsString(bs []burst) string {
	if len(bs) == 0 {
		return "none"
	}
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = strconv.Itoa(b.n)
		if !b.complete {
			parts[i] += " (cut by the edge of the hold)"
		}
	}
	return strings.Join(parts, ", ")
}

// settledRSS reads the RSS of pid until two readings 250 ms apart agree
// within 0.5 % (or 3 s pass).
func settledRSS(pid int) (uint64, error) {
	prev, err := processRSS(pid)
	if err != nil {
		return 0, err
	}
	for range 12 {
		time.Sleep(250 * time.Millisecond) // sampling interval, not synchronization
		cur, err := processRSS(pid)
		if err != nil {
			return 0, err
		}
		if d := int64(cur) - int64(prev); d*200 <= int64(cur) && -d*200 <= int64(cur) {
			return cur, nil
		}
		prev = cur
	}
	return prev, nil
}

// total is the load processes' reports summed.
type total struct {
	opened, dropped       int
	sent, echoed          int64
	handshakes, rtts      []time.Duration
	failures, closeCodes  map[string]int
	firstClose, lastClose int64
}

func summarize(reports []workerReport) total {
	t := total{failures: map[string]int{}, closeCodes: map[string]int{}}
	for _, r := range reports {
		t.opened += r.Opened
		t.dropped += r.Dropped
		t.sent += r.Sent
		t.echoed += r.Echoed
		for _, d := range r.Handshakes {
			t.handshakes = append(t.handshakes, time.Duration(d))
		}
		for _, d := range r.RTTs {
			t.rtts = append(t.rtts, time.Duration(d))
		}
		for k, n := range r.Failures {
			t.failures[k] += n
		}
		for k, n := range r.CloseCodes {
			t.closeCodes[k] += n
		}
		if r.FirstClose != 0 && (t.firstClose == 0 || r.FirstClose < t.firstClose) {
			t.firstClose = r.FirstClose
		}
		t.lastClose = max(t.lastClose, r.LastClose)
	}
	return t
}

// problems lists what makes the run fail: any failure, any connection not
// closed with 1001.
func (t total) problems(opened, want int) []string {
	var out []string
	if n := sumValues(t.failures); n > 0 || opened < want {
		out = append(out, fmt.Sprintf("opened %d of %d; failures: %s", opened, want, countsString(t.failures)))
	}
	if t.dropped > 0 {
		out = append(out, fmt.Sprintf("%d connections dropped without a close frame", t.dropped))
	}
	if t.closeCodes["1001"] != opened || len(t.closeCodes) > 1 {
		out = append(out, fmt.Sprintf("close codes %s; want 1001 for all %d", countsString(t.closeCodes), opened))
	}
	return out
}

func pct(d []time.Duration, q int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*q/100)].Round(10 * time.Microsecond)
}

func exitString(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

func tail(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}
