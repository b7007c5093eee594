package integration_test

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

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
