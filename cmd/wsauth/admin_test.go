package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

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
