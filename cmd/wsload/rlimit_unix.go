//go:build unix

package main

import "syscall"

// raiseOpenFiles raises the soft limit on open files to the hard limit
// (every connection is a file descriptor) and returns both.
func raiseOpenFiles() (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, 0, err
		}
	}
	return uint64(lim.Cur), uint64(lim.Max), nil
}
