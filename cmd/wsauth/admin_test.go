package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

var (
	adminURL   = regexp.MustCompile(`msg="wsauth admin listening" url=(\S+)`)
	aliceToken = regexp.MustCompile(`alice \(scopes api ws\): (\S+)`)
)

// TestAdminVars checks that -admin-addr serves expvar's variables with the
// server's open connections, and that without it nothing says it listens.
func TestAdminVars(t *testing.T) {
	base, out := startRun(t, []string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0"}, noEnv)
	m := adminURL.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no admin listening line:\n%s", out)
	}
	vars := func() map[string]json.RawMessage {
		t.Helper()
		resp, err := http.Get(m[1])
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("GET /debug/vars: %d %q; want 200 application/json", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var v map[string]json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatalf("GET /debug/vars: %v", err)
		}
		return v
	}
	openConns := func() int {
		var w struct {
			OpenConns *int `json:"open_conns"`
		}
		if err := json.Unmarshal(vars()["wsauth"], &w); err != nil || w.OpenConns == nil {
			t.Fatalf("wsauth var: %v, %v", err, w.OpenConns)
		}
		return *w.OpenConns
	}
	if _, ok := vars()["memstats"]; !ok {
		t.Error(`/debug/vars has no "memstats"`)
	}
	if n := openConns(); n != 0 {
		t.Errorf("open_conns = %d before any connection; want 0", n)
	}

	tok := aliceToken.FindStringSubmatch(out.String())
	if tok == nil {
		t.Fatalf("no token for alice in the demo output:\n%s", out)
	}
	cfg, err := websocket.NewConfig(strings.Replace(base, "http", "ws", 1)+"/ws", base)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Header = http.Header{"Authorization": {"Bearer " + tok[1]}}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	defer ws.Close()
	var welcome map[string]any
	if err := websocket.JSON.Receive(ws, &welcome); err != nil || welcome["type"] != "welcome" {
		t.Fatalf("first message %v, %v; want a welcome", welcome, err)
	}
	if n := openConns(); n != 1 {
		t.Errorf("open_conns = %d with one WebSocket open; want 1", n)
	}
}

// TestAdminOffByDefault checks that no admin listener starts without
// -admin-addr.
func TestAdminOffByDefault(t *testing.T) {
	_, out := startRun(t, []string{"-addr", "127.0.0.1:0"}, noEnv)
	if strings.Contains(out.String(), "admin listening") {
		t.Errorf("an admin listener started without -admin-addr:\n%s", out)
	}
}

// TestAdminShowsNoSecrets: /debug/vars serves memstats and wsauth, and not
// expvar's cmdline, where a flag's value would show.
func TestAdminShowsNoSecrets(t *testing.T) {
	_, out := startRun(t, []string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0"}, noEnv)
	m := adminURL.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no admin listening line:\n%s", out)
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("GET /debug/vars: %v", err)
	}
	var keys []string
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"memstats", "wsauth"}) {
		t.Errorf("GET /debug/vars has %q; want exactly memstats and wsauth (no cmdline)", keys)
	}
}

// TestAdminOnlyItsOwnHost: the admin listener answers a request only if
// its Host is the address the listener was given, so that a page whose
// name resolves to 127.0.0.1 (DNS rebinding) reads nothing; others get
// 421. An address without a host cannot be checked so, and is refused.
func TestAdminOnlyItsOwnHost(t *testing.T) {
	for _, tc := range []struct {
		admin string
		hosts map[string]int // Host (%s: the port) → status
	}{
		{"127.0.0.1:0", map[string]int{
			"127.0.0.1:%s":        200,
			"localhost:%s":        421,
			"rebind.example:%s":   421,
			"127.0.0.1.nip.io:%s": 421,
			"127.0.0.1":           421,
			"":                    421,
		}},
		{"localhost:0", map[string]int{
			"localhost:%s":      200,
			"LOCALHOST:%s":      200,
			"rebind.example:%s": 421,
		}},
	} {
		_, out := startRun(t, []string{"-addr", "127.0.0.1:0", "-admin-addr", tc.admin}, noEnv)
		m := regexp.MustCompile(`msg="wsauth admin listening" url=http://(\S+)/debug/vars`).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("-admin-addr %s: no admin listening line:\n%s", tc.admin, out)
		}
		_, port, _ := net.SplitHostPort(m[1])
		for host, want := range tc.hosts {
			if strings.Contains(host, "%s") {
				host = fmt.Sprintf(host, port)
			}
			nc, err := net.Dial("tcp", m[1])
			if err != nil {
				t.Fatal(err)
			}
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			req := "GET /debug/vars HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n"
			if host == "" {
				req = "GET /debug/vars HTTP/1.0\r\n\r\n" // HTTP/1.0 may omit Host
			}
			io.WriteString(nc, req)
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil {
				t.Fatalf("-admin-addr %s, Host %q: %v", tc.admin, host, err)
			}
			resp.Body.Close()
			nc.Close()
			if resp.StatusCode != want {
				t.Errorf("-admin-addr %s: GET /debug/vars with Host %q: %d; want %d", tc.admin, host, resp.StatusCode, want)
			}
		}
	}

	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out := &syncBuffer{}
		err := run(ctx, []string{"-addr", "127.0.0.1:0", "-admin-addr", addr}, noEnv, out, out)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "-admin-addr "+addr+": name the one address") {
			t.Errorf("run -admin-addr %s = %v; want an error asking for the address", addr, err)
		}
	}
}
