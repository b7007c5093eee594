package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
)

func TestParseTicketKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want byte // first byte of the key; 0 for none
		ok   bool
	}{
		{"", 0, true},
		{strings.Repeat("ab", 32), 0xab, true}, // openssl rand -hex 32
		{"q/v/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 0xab, true},       // openssl rand -base64 32
		{"q/v/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0xab, true},        // unpadded
		{"q_v_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0xab, true},        // URL alphabet
		{strings.Repeat("ab", 31), 0, false},                               // 31 bytes of hex
		{strings.Repeat("zz", 32), 0, false},                               // not hex, not 32 bytes of base64
		{"qwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", 0, false}, // 37 bytes
		{"secret-passphrase", 0, false},
	} {
		k, err := parseTicketKey(tc.in)
		switch {
		case !tc.ok:
			if err == nil {
				t.Errorf("parseTicketKey(%q) = %x; want an error", tc.in, k)
			} else if strings.Contains(err.Error(), tc.in) {
				t.Errorf("parseTicketKey(%q): the error repeats the key: %v", tc.in, err)
			}
		case err != nil:
			t.Errorf("parseTicketKey(%q): %v; want a key", tc.in, err)
		case tc.in == "" && k != nil:
			t.Errorf("parseTicketKey(\"\") = %x; want nil", k)
		case tc.in != "" && (len(k) != 32 || k[0] != tc.want):
			t.Errorf("parseTicketKey(%q) = %x; want 32 bytes starting %#x", tc.in, k, tc.want)
		}
	}
}

func TestBadTicketFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const notAKey = "not-a-key-but-maybe-a-secret"
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"-ws-reject", "silently"}, "", "-ws-reject"},
		{nil, "short", "ticket key in $WSAUTH_TICKET_KEY: want 32 bytes"},
		{[]string{"-ticket-key-file", file("bad", notAKey)}, "", "ticket key in -ticket-key-file " + dir + "/bad: want 32 bytes"},
		{[]string{"-ticket-key-file", file("empty", "\n")}, "", "the file is empty"},
		{[]string{"-ticket-key-file", filepath.Join(dir, "missing")}, "", "-ticket-key-file: open " + dir + "/missing"},
		{[]string{"-ticket-key-file", file("good", strings.Repeat("42", 32))}, strings.Repeat("42", 32), "both $WSAUTH_TICKET_KEY and -ticket-key-file"},
	} {
		getenv := func(k string) string {
			if k == "WSAUTH_TICKET_KEY" {
				return tc.env
			}
			return ""
		}
		out := &syncBuffer{}
		err := run(context.Background(), append([]string{"-addr", "127.0.0.1:0"}, tc.args...), getenv, out, out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %q with WSAUTH_TICKET_KEY=%q = %v; want an error saying %s", tc.args, tc.env, err, tc.want)
		} else if strings.Contains(err.Error(), notAKey) {
			t.Errorf("run %q: the error repeats the file's content: %v", tc.args, err)
		}
	}
}

// TestTicketKeyNotOnCommandLine: -ticket-key, which put the key where ps
// and /debug/vars show it, is gone; using it is an error that says where
// the key goes now, and that neither the error nor the output repeats.
func TestTicketKeyNotOnCommandLine(t *testing.T) {
	t.Parallel()
	key := strings.Repeat("7e", 32)
	for _, args := range [][]string{
		{"-ticket-key", key},
		{"-ticket-key=" + key},
		{"--ticket-key", key},
		{"-ticket-key", ""},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out := &syncBuffer{}
		err := run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), noEnv, out, out)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "$WSAUTH_TICKET_KEY") || !strings.Contains(err.Error(), "-ticket-key-file") {
			t.Errorf("run %q = %v; want an error pointing to $WSAUTH_TICKET_KEY and -ticket-key-file", args, err)
			continue
		}
		if strings.Contains(err.Error(), key) || strings.Contains(out.String(), key) {
			t.Errorf("run %q: the key appears in the error %q or the output %q", args, err, out)
		}
	}
}

// TestSharedTicketKey: two processes given one ticket key, one in
// $WSAUTH_TICKET_KEY and one in -ticket-key-file, accept each other's
// tickets; /dev/login is off outside the demo and close mode is wired.
func TestSharedTicketKey(t *testing.T) {
	svc := faketokensvc.New(faketokensvc.Options{ClientID: "wsauth", ClientSecret: "dev-secret"})
	ts := httptest.NewServer(svc.Handler())
	defer ts.Close()
	getenv := func(k string) string {
		return map[string]string{"WSAUTH_CLIENT_SECRET": "dev-secret", "WSAUTH_TICKET_KEY": strings.Repeat("42", 32)}[k]
	}
	args := []string{"-addr", "127.0.0.1:0", "-introspect-url", ts.URL + "/introspect", "-ws-reject", "close"}
	a, outA := startRun(t, args, getenv)
	// B reads the same key from a file, as systemd's LoadCredential= or a
	// mounted secret provide it.
	keyFile := filepath.Join(t.TempDir(), "ticket-key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("42", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, outB := startRun(t, append(args, "-ticket-key-file", keyFile), func(k string) string {
		return map[string]string{"WSAUTH_CLIENT_SECRET": "dev-secret"}[k]
	})
	for _, out := range []*syncBuffer{outA, outB} {
		if strings.Contains(out.String(), "no ticket key configured") {
			t.Errorf("run with a ticket key logged that it has none:\n%s", out)
		}
	}
	if resp, err := http.Post(a+"/dev/login", "application/json", strings.NewReader(`{"sub":"alice"}`)); err != nil || resp.StatusCode != 404 {
		t.Errorf("POST /dev/login with an external token system: %v %v; want 404", resp, err)
	}

	alice, _ := svc.Issue("alice", []string{"api", "ws"}, time.Hour)
	req, _ := http.NewRequest("POST", a+"/api/ws-ticket", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Ticket string }
	json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if resp.StatusCode != 200 || m.Ticket == "" {
		t.Fatalf("POST /api/ws-ticket at A: %d %+v; want 200 and a ticket", resp.StatusCode, m)
	}
	if got := handshake(t, b, "/ws?ticket="+m.Ticket); got != "101" {
		t.Errorf("A's ticket at B: status %s; want 101", got)
	}
	// Close mode: B upgrades the replay too, then closes it with 3000.
	if got := handshake(t, b, "/ws?ticket="+m.Ticket); got != "101 close 3000" {
		t.Errorf("A's ticket replayed at B in close mode: %s; want 101 close 3000", got)
	}
}

// handshake opens a WebSocket to base+path and returns the status, and for
// a 101 whose first frame is a close, "close <code>".
func handshake(t *testing.T, base, path string) string {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	nc.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: " + strings.TrimPrefix(base, "http://") +
		"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	status := resp.Status[:3]
	if resp.StatusCode != 101 {
		return status
	}
	var h [4]byte
	if _, err := br.Read(h[:2]); err != nil || h[0] != 0x88 {
		return status // the welcome, not a close
	}
	br.Read(h[2:4])
	return status + " close " + itoa(int(h[2])<<8|int(h[3]))
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
