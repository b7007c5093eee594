package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is a server process under measurement: wsauth or a peer.
type server struct {
	name    string
	cmd     *exec.Cmd
	url     string // http://127.0.0.1:port
	logPath string // its stdout and stderr
	exited  chan struct{}
	waitErr error
}

// listeningRe finds the address in the line every server logs when it
// listens: wsauth's `msg="wsauth listening" url=http://…`, and the peers'.
var listeningRe = regexp.MustCompile(`listening.* url=(http://[0-9.:\[\]]+)`)

// pinned prefixes argv with taskset, to run it on cpus ("0", "1", "0-1"),
// when cpus is not empty.
func pinned(cpus string, argv []string) []string {
	if cpus == "" {
		return argv
	}
	return append([]string{"taskset", "-c", cpus}, argv...)
}

// startServer runs argv with env added, its output in a file (a log that a
// real deployment writes goes somewhere too: its write is part of the
// cost), and waits for its listening line.
func startServer(name string, argv, env []string) (*server, error) {
	f, err := os.CreateTemp("", "wsbench-"+name+"-*.log")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, logPath: f.Name(), exited: make(chan struct{})}
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
			os.Remove(s.logPath)
			return nil, fmt.Errorf("%s exited before listening (%v): %s", name, s.waitErr, lastLines(b, 5))
		case <-time.After(20 * time.Millisecond): // polling the log with a deadline
		}
		if time.Now().After(deadline) {
			s.stop()
			s.remove()
			return nil, fmt.Errorf("%s logged no listening line in 15s: %s", name, lastLines(b, 5))
		}
	}
}

// stop ends the server: SIGTERM, then SIGKILL after 15 s. It keeps the log
// (for the token check); remove removes it.
func (s *server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *server) remove() { os.Remove(s.logPath) }

func (s *server) pid() int { return s.cmd.Process.Pid } // taskset execs: the same pid

// rssKiB reads the resident set size of process pid (VmRSS in
// /proc/<pid>/status, in KiB).
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc/<pid>/status")
}

// clockTick is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// 100 on every Linux architecture Go runs on.
const clockTick = 10 * time.Millisecond

// cpuTime reads the user and system CPU time process pid has used, all
// threads together (/proc/<pid>/stat fields 14 and 15).
func cpuTime(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("unreadable /proc/<pid>/stat")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0, 0, errors.New("short /proc/<pid>/stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, err
	}
	return time.Duration(u) * clockTick, time.Duration(s) * clockTick, nil
}

// loadRunner starts "wsbench load" processes.
type loadRunner struct {
	self string // this executable
	cpus string // taskset CPU list; empty: not pinned
}

// run runs one handshake or echo load against url and returns its result.
func (lr loadRunner) run(ctx context.Context, url string, tokens []string, args ...string) (loadResult, error) {
	argv := pinned(lr.cpus, append([]string{lr.self, "load", "-url", url}, args...))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "WSBENCH_TOKENS="+strings.Join(tokens, ","))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return loadResult{}, fmt.Errorf("load %q: %w: %s", args, err, lastLines(stderr.Bytes(), 5))
	}
	var r loadResult
	if err := json.Unmarshal(out, &r); err != nil {
		return loadResult{}, fmt.Errorf("load %q: unreadable result %q: %w", args, out, err)
	}
	return r, nil
}

// holder is a "wsbench load -mode hold" process holding connections.
type holder struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Scanner
	stderr bytes.Buffer
}

// hold starts a load process that opens n connections and waits until it
// has them all (or has failed some).
func (lr loadRunner) hold(ctx context.Context, url string, tokens []string, n int) (*holder, loadResult, error) {
	argv := pinned(lr.cpus, []string{lr.self, "load", "-url", url, "-mode", "hold", "-conns", strconv.Itoa(n)})
	h := &holder{cmd: exec.CommandContext(ctx, argv[0], argv[1:]...)}
	h.cmd.Env = append(os.Environ(), "WSBENCH_TOKENS="+strings.Join(tokens, ","))
	h.cmd.Stderr = &h.stderr
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		return nil, loadResult{}, err
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, loadResult{}, err
	}
	h.out = bufio.NewScanner(stdout)
	if err := h.cmd.Start(); err != nil {
		return nil, loadResult{}, err
	}
	r, err := h.next()
	if err != nil {
		h.stdin.Close()
		h.cmd.Wait()
		return nil, r, fmt.Errorf("hold: %w: %s", err, lastLines(h.stderr.Bytes(), 5))
	}
	return h, r, nil
}

func (h *holder) next() (loadResult, error) {
	var r loadResult
	if !h.out.Scan() {
		return r, fmt.Errorf("load process ended without a result: %v", h.out.Err())
	}
	return r, json.Unmarshal(h.out.Bytes(), &r)
}

// release has the holder close its connections properly and returns its
// last report.
func (h *holder) release() (loadResult, error) {
	h.stdin.Close()
	r, err := h.next()
	if werr := h.cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("%w: %s", werr, lastLines(h.stderr.Bytes(), 5))
	}
	return r, err
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}
