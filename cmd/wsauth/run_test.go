package main

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
)

// syncBuffer is an io.Writer that run can write to while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listeningURL = regexp.MustCompile(`msg="wsauth listening" url=(\S+)`)

// startRun runs the command in the background and returns its URL and
// output; the run ends, and is checked to end cleanly, with the test.
func startRun(t *testing.T, args []string, getenv func(string) string) (string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, getenv, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v after cancel; want nil", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("run did not return within 15s of cancel")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := listeningURL.FindStringSubmatch(out.String()); m != nil {
			return m[1], out
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line in 10s:\n%s", out)
		}
	}
}

func noEnv(string) string { return "" }

// TestDemoCommandsWorkAsPrinted runs every curl command the demo prints,
// exactly as printed, and checks the answer each comment promises.
func TestDemoCommandsWorkAsPrinted(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed: the printed commands are curl commands")
	}
	base, out := startRun(t, []string{"-addr", "127.0.0.1:0"}, noEnv)
	var cmds []string
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "curl ") {
			cmd, _, _ := strings.Cut(line, "  #")
			cmds = append(cmds, strings.TrimSpace(cmd))
		}
	}
	want := []string{"HTTP/1.1 200 OK", "HTTP/1.1 200 OK", "HTTP/1.1 401 Unauthorized", "HTTP/1.1 101 Switching Protocols"}
	if len(cmds) != len(want) {
		t.Fatalf("demo printed %d curl commands; want %d:\n%s", len(cmds), len(want), out)
	}
	for i, cmd := range cmds {
		if !strings.Contains(cmd, base) {
			t.Errorf("command %q does not use the server's URL %s", cmd, base)
		}
		got, _ := exec.Command("sh", "-c", cmd).Output() // the WebSocket one ends by --max-time
		if !strings.HasPrefix(string(got), want[i]) {
			t.Errorf("%s\n  printed %.200q; want it to start with %q", cmd, got, want[i])
		}
		if i == 3 && !strings.Contains(string(got), `{"type":"welcome","sub":"alice"`) {
			t.Errorf("WebSocket command printed %.300q; want the welcome for alice", got)
		}
	}
}

// TestExternalTokenSystem is the -introspect-url mode: tokens from another
// process's admin API behave as the answers table says.
func TestExternalTokenSystem(t *testing.T) {
	svc := faketokensvc.New(faketokensvc.Options{ClientID: "wsauth", ClientSecret: "dev-secret"})
	ts := httptest.NewServer(svc.Handler())
	defer ts.Close()
	args := []string{"-addr", "127.0.0.1:0", "-introspect-url", ts.URL + "/introspect", "-client-id", "wsauth"}

	if err := run(context.Background(), args, noEnv, &syncBuffer{}); err == nil || !strings.Contains(err.Error(), "WSAUTH_CLIENT_SECRET") {
		t.Errorf("run without a client secret = %v; want an error naming WSAUTH_CLIENT_SECRET", err)
	}

	base, out := startRun(t, args, func(k string) string {
		if k == "WSAUTH_CLIENT_SECRET" {
			return "dev-secret"
		}
		return ""
	})
	if strings.Contains(out.String(), "curl") {
		t.Errorf("external mode printed demo commands:\n%s", out)
	}
	alice, _ := svc.Issue("alice", []string{"api", "ws"}, time.Hour)
	bob, _ := svc.Issue("bob", []string{"ws"}, time.Hour)
	revoked, _ := svc.Issue("carol", []string{"api"}, time.Hour)
	svc.Revoke(revoked)
	for _, tc := range []struct {
		token  string
		status int
	}{{alice, 200}, {bob, 403}, {revoked, 401}, {"unknown-token", 401}} {
		req, _ := http.NewRequest("GET", base+"/api/me", nil)
		req.Header.Set("Authorization", "Bearer "+tc.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET /api/me: %d; want %d", resp.StatusCode, tc.status)
		}
	}
}
