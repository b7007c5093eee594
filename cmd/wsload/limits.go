package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"wsauth/tokens"
)

// The limits a many-connection run meets, each checked before the first
// connection, so that a run that cannot succeed says which limit stops it
// instead of failing thousands of handshakes.

// fdHeadroom is what a process needs besides its connections: stdio, the
// runtime's epoll and pipe, a listener, a log file, a few HTTP clients.
const fdHeadroom = 64

// serverOutbound bounds wsauth's connections to the token system, in use
// and idle: tokens.Introspector's shared client opens at most
// tokens.MaxConnsPerHost to it, recheck sweeps included. They count
// against the same open-files limit as the WebSockets.
const serverOutbound = tokens.MaxConnsPerHost

// limitError is a limit that stops a run: which, and what would lift it.
type limitError struct {
	limit string // e.g. "open files of this process (RLIMIT_NOFILE)"
	have  string
	need  string
	fix   string
}

func (e *limitError) Error() string {
	return fmt.Sprintf("%s stops this run: %s, and it needs %s; %s", e.limit, e.have, e.need, e.fix)
}

// checkOwnFiles checks that a process with open-files limit limit (0:
// unknown) can hold conns connections. hardLimit is the most it could be
// raised to (0: unknown).
func checkOwnFiles(conns int, limit, hardLimit uint64) error {
	need := uint64(conns) + fdHeadroom
	if limit == 0 || need <= limit {
		return nil
	}
	fix := "raise it (ulimit -n)"
	if hardLimit != 0 && need > hardLimit {
		procs := (conns + int(hardLimit) - fdHeadroom - 1) / (int(hardLimit) - fdHeadroom)
		fix = fmt.Sprintf("the hard limit is %d: spread the connections over at least %d processes (-procs %d)", hardLimit, procs, procs)
	}
	return &limitError{
		limit: "the open-files limit of a wsload process (RLIMIT_NOFILE)",
		have:  fmt.Sprintf("it is %d", limit),
		need:  fmt.Sprintf("%d (%d connections + %d)", need, conns, fdHeadroom),
		fix:   fix,
	}
}

// portRange reads the ephemeral port range that connect() draws local
// ports from.
func portRange() (lo, hi int, err error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, errors.New("unreadable ip_local_port_range")
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err := errors.Join(err1, err2); err != nil || hi < lo {
		return 0, 0, fmt.Errorf("unreadable ip_local_port_range %q", b)
	}
	return lo, hi, nil
}

// checkPorts checks that conns connections to one server address, from
// sources local addresses (at least one), fit in the ephemeral range lo–hi:
// each local address has the range once per destination.
func checkPorts(conns, sources, lo, hi int) error {
	per := hi - lo + 1
	sources = max(sources, 1)
	// Keep a tenth free: other programs, and ports still in TIME_WAIT.
	if usable := per * sources * 9 / 10; conns > usable {
		want := (conns*10/9 + per - 1) / per
		return &limitError{
			limit: "the ephemeral port range (net.ipv4.ip_local_port_range)",
			have:  fmt.Sprintf("%d–%d gives %d ports per source address, %d from %d address(es) with a tenth kept free", lo, hi, per, usable, sources),
			need:  fmt.Sprintf("%d", conns),
			fix:   fmt.Sprintf("give at least %d loopback source addresses (-sources 127.0.0.1,127.0.0.2,…) or widen the range", want),
		}
	}
	return nil
}

// procOpenFiles reads the open-files limit of process pid from
// /proc/<pid>/limits.
func procOpenFiles(pid int) (soft, hard uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) < 2 {
				break
			}
			soft, err1 := strconv.ParseUint(f[0], 10, 64)
			hard, err2 := strconv.ParseUint(f[1], 10, 64)
			if f[0] == "unlimited" {
				soft, err1 = 1<<63, nil
			}
			if f[1] == "unlimited" {
				hard, err2 = 1<<63, nil
			}
			return soft, hard, errors.Join(err1, err2)
		}
	}
	return 0, 0, fmt.Errorf("no open-files line in /proc/%d/limits", pid)
}

// checkServerFiles checks that a server with open-files limit soft can
// hold conns WebSockets, its own outbound connections to the token system
// (serverOutbound), and its listener and log.
func checkServerFiles(pid int, soft, hard uint64, conns int) error {
	need := uint64(conns + serverOutbound + fdHeadroom)
	if need <= soft {
		return nil
	}
	fix := "raise it before starting the server (ulimit -n; Go raises its soft limit to the hard one)"
	if need > hard {
		fix = fmt.Sprintf("the hard limit is %d: one server process cannot hold %d connections here; run fewer (-conns %d) or raise the hard limit (limits.conf, LimitNOFILE=)",
			hard, conns, int(soft)-serverOutbound-fdHeadroom)
	}
	return &limitError{
		limit: fmt.Sprintf("the server's open-files limit (/proc/%d/limits)", pid),
		have:  fmt.Sprintf("it is %d", soft),
		need:  fmt.Sprintf("%d (%d WebSockets + up to %d to the token system + %d)", need, conns, serverOutbound, fdHeadroom),
		fix:   fix,
	}
}

// processRSS reads the resident set size of process pid, in bytes
// (VmRSS in /proc/<pid>/status).
func processRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
