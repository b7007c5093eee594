// Package integration_test runs the wsauth server and the fake token service
// on real sockets and checks them from outside, as clients see them.
//
// Where each behaviour is proven:
//
//	auth_test.go           the answers table: HTTP and WebSocket × token kinds × credential ways
//	credentials_test.go    where the token comes from: precedence, two credentials, a planted cookie
//	origin_test.go         the Origin check against cross-site WebSocket hijacking
//	scopes_test.go         scopes named by the operator (Config.APIScope, Config.WSScope)
//	ticket_test.go         one-time tickets: minting, single use, the replay set and its quota
//	cache_test.go          concurrent handshakes with one token cost one introspection
//	faults_test.go         a token system that is down, slow or wrong: 503, never a way in
//	jwt_test.go            JWT access tokens: the matrix, hostile JWTs, key rotation, revocation
//	expiry_test.go         a WebSocket closes with 3000 when its token expires
//	recheck_test.go        rechecks close revoked (3000) and descoped (3003) WebSockets
//	refresh_test.go        in-band refresh onto a new token of the same subject
//	limits_test.go         message size, fragments, slow readers, dead peers, MaxConns
//	closing_test.go        the closing handshake, close codes for bad frames, nothing after the server's close
//	shutdown_test.go       1001 on shutdown, within its deadline
//	hostile_test.go        bad input, slowloris, the failure throttle, per-subject bounds, length overflow
//	bounded_test.go        memory stays bounded under floods of bad tokens and connections
//	multiinstance_test.go  several instances share only the token system
//	demo_test.go           demo mode's sign-in and page, and close mode (-ws-reject=close)
//	clientsupport_test.go  what wsauth.js needs: refresh by ticket, expires_in, GET /api/ws-check
//	browser_test.go        the demo page in headless Chromium: every way of connecting, a hijack attempt
//	browser_client_test.go wsauth.js in headless Chromium: refresh, reconnect, backoff, stops
//	proxy_test.go          docs/DEPLOY.md's nginx in front of two cmd/wsauth processes
//	conformance_test.go    the black-box suite, verdict per capability, against any target (remote_test.go)
//	soak_test.go           opt-in (-soak=5m): a thousand sockets while tokens churn and the token system flaps
//	bench_test.go          what authorization costs, beside a bare x/net server (also jwt_bench_test.go)
//
// The harness: main_test.go holds TestMain and what every test is held
// to (no leaked goroutine, no token in any log, a skipped Chromium or nginx
// suite said on the terminal); env_test.go the servers under test (env:
// the fake and a server in front of it, its options, tokens and clocks);
// wsclient_test.go the client side (a raw WebSocket client that can send
// what no honest client sends, and the checks of what a client reads);
// remote_test.go the same env against a server started elsewhere.
//
// Tests that check for leaked goroutines (checkNoLeaks) are sequential at
// the top level; their subtests run in parallel, each with its own server.
package integration_test

import (
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain runs the tests, then fails the package for a goroutine left
// running or a token in any server log, and says which suites skipped.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left after the tests:\n%s\n", leaked)
			code = 1
		}
		if err := tokensInLogs(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	reportSkippedSuites()
	os.Exit(code)
}

// skippedSuites names the suites that skipped for want of a tool (Chromium,
// nginx), with how to enable each.
var (
	skippedMu     sync.Mutex
	skippedSuites = map[string]string{}
)

// skipSuite skips t for want of a tool and remembers why, for
// reportSkippedSuites.
func skipSuite(t *testing.T, suite, msg string) {
	t.Helper()
	skippedMu.Lock()
	skippedSuites[suite] = msg
	skippedMu.Unlock()
	t.Skip(msg)
}

// reportSkippedSuites says, one line per suite, which suites did not run
// and how to run them. `go test ./...` shows nothing of a passing package
// but its "ok" line, so a skip would pass unseen: the line goes to the
// terminal (/dev/tty) when there is one, else to stderr, where -v and a
// failing run show it.
func reportSkippedSuites() {
	skippedMu.Lock()
	defer skippedMu.Unlock()
	if len(skippedSuites) == 0 {
		return
	}
	var w io.Writer = os.Stderr
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		w = tty
	}
	for _, suite := range slices.Sorted(maps.Keys(skippedSuites)) {
		fmt.Fprintf(w, "wsauth/integration_test: %s suite SKIPPED: %s\n", suite, skippedSuites[suite])
	}
}

// leakedGoroutines waits up to d for the goroutines of servers and
// connections to end, and returns the stacks of those that did not.
func leakedGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		var leaked []string
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "wsauth/") && !strings.Contains(g, "leakedGoroutines") && !strings.Contains(g, "TestMain") ||
				strings.Contains(g, "net/http.(*conn).serve") || strings.Contains(g, "net/http.(*persistConn)") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		<-time.After(50 * time.Millisecond) // polling with a deadline
	}
}

// Every token issued and every log line written by the suite, for the
// check that no token ever reaches a log.
var (
	leakMu  sync.Mutex
	issued  []string
	allLogs strings.Builder
)

// tokensInLogs reports a token or ticket the suite issued that a server log
// line holds.
func tokensInLogs() error {
	if remote() {
		return nil // the target's logs are not ours to read
	}
	leakMu.Lock()
	defer leakMu.Unlock()
	logs := allLogs.String()
	if len(issued) > 0 && logs == "" {
		// Tokens were used but nothing was logged: the check would be empty.
		return fmt.Errorf("token-leak check saw %d tokens and no logs", len(issued))
	}
	for _, tok := range issued {
		if strings.Contains(logs, tok) {
			return fmt.Errorf("a token appears in the server logs")
		}
	}
	return nil
}

// rememberSecret adds a token or ticket to those no log may contain.
func rememberSecret(s string) {
	leakMu.Lock()
	issued = append(issued, s)
	leakMu.Unlock()
}

// checkNoLeaks fails t if a goroutine started during t is still running
// when t ends, once every other cleanup has run and after giving them up to
// leakWait to finish.
//
// Call it first thing in the test, before newEnv: cleanups run last-in
// first-out, so the check comes after the server and the fake shut down.
// A test that calls it must not call t.Parallel (its subtests may): Go runs
// parallel top-level tests only after every sequential one has finished,
// so whatever starts while a sequential test runs belongs to it. Goroutine
// ids are never reused, which makes "not there before" exact.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	before := make(map[int64]bool)
	for _, g := range goroutineStacks() {
		before[g.id] = true
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(leakWait)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var leaked []string
			for _, g := range goroutineStacks() {
				if !before[g.id] && !runtimeOwned(g.stack) {
					leaked = append(leaked, g.stack)
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines started by %s still run %v after it:\n\n%s",
					len(leaked), t.Name(), leakWait, strings.Join(leaked, "\n\n"))
				return
			}
			<-tick.C
		}
	})
}

// leakWait bounds how long a test's goroutines may take to end after it.
// Generous, because the machine may be loaded: a leak never ends at all.
const leakWait = 5 * time.Second

type goroutine struct {
	id    int64
	stack string
}

// goroutineStacks returns every goroutine's id and stack.
func goroutineStacks() []goroutine {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []goroutine
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		// "goroutine 42 [running]:"
		head, _, _ := strings.Cut(g, " [")
		id, err := strconv.ParseInt(strings.TrimPrefix(head, "goroutine "), 10, 64)
		if err != nil {
			continue
		}
		out = append(out, goroutine{id, g})
	}
	return out
}

// runtimeOwned reports whether a goroutine belongs to the runtime (the
// finalizer goroutine, started lazily the first time one is needed) rather
// than to the code under test.
func runtimeOwned(stack string) bool {
	return strings.Contains(stack, "created by runtime.") || strings.Contains(stack, "runtime.runfinq")
}
