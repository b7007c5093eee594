//go:build unix

package main

import (
	"net"
	"syscall"
	"testing"
)

// TestListenWithoutKeepAlive: the connections wsauth accepts have no TCP
// keep-alive, which net.Listen would turn on at four system calls each:
// pings and IdleTimeout find dead peers first.
func TestListenWithoutKeepAlive(t *testing.T) {
	t.Parallel()
	ln, err := listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var on int
	var serr error
	if err := rc.Control(func(fd uintptr) { on, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	if on != 0 {
		t.Errorf("accepted connection: SO_KEEPALIVE = %d; want 0 (off)", on)
	}
}
