package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
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
	go func() { done <- run(ctx, args, getenv, out, out) }()
	returned := false // run returned before its listening line: nothing to wait for
	t.Cleanup(func() {
		cancel()
		if returned {
			return
		}
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
			returned = true
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
// exactly as printed, under each flag the README documents that changes
// them, and checks the answer each comment promises: bob's WebSocket
// command is the printed one with bob's token. It also checks that the
// banner says demo mode in capitals and that the query snippet follows
// -allow-query-token.
func TestDemoCommandsWorkAsPrinted(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed: the printed commands are curl commands")
	}
	cert, key := writeTestCert(t)
	for _, tc := range []struct {
		name       string
		args       []string
		cookie     string // the cookie name the printed command uses
		bobWS      string // the answer to bob's WebSocket handshake
		querySnip  bool
		scheme, ws string
	}{
		{"defaults", nil, "token", "403", true, "http", "ws"},
		{"tls-cert", []string{"-tls-cert", cert, "-tls-key", key}, "__Host-token", "403", true, "https", "wss"},
		{"tls-cert and cookie-name", []string{"-tls-cert", cert, "-tls-key", key, "-cookie-name", "sid"}, "sid", "403", true, "https", "wss"},
		{"allow-query-token=false", []string{"-allow-query-token=false"}, "token", "403", false, "http", "ws"},
		{"cookie-name", []string{"-cookie-name", "sid"}, "sid", "403", true, "http", "ws"},
		{"ws-reject=close", []string{"-ws-reject=close"}, "token", "101 close 3003", true, "http", "ws"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base, out := startRun(t, append([]string{"-addr", "127.0.0.1:0"}, tc.args...), noEnv)
			banner := out.String()
			if !strings.HasPrefix(base, tc.scheme+"://") {
				t.Fatalf("listening on %s; want %s://", base, tc.scheme)
			}
			if !strings.Contains(banner, "DEMO MODE: anyone can sign in as anyone") {
				t.Errorf("banner and log do not say DEMO MODE: anyone can sign in as anyone:\n%s", banner)
			}
			if !strings.Contains(banner, `level=WARN msg="DEMO MODE: anyone can sign in as anyone"`) {
				t.Errorf("no DEMO MODE warning in the log:\n%s", banner)
			}
			bob := regexp.MustCompile(`bob   \(scope  api\):    (\S+)`).FindStringSubmatch(banner)
			alice := aliceToken.FindStringSubmatch(banner)
			if bob == nil || alice == nil {
				t.Fatalf("no tokens for alice and bob in the banner:\n%s", banner)
			}
			if got := strings.Contains(banner, "new WebSocket("); got != tc.querySnip {
				t.Errorf("banner shows the ?token= snippet: %v; want %v", got, tc.querySnip)
			}
			if tc.querySnip && !strings.Contains(banner, `new WebSocket("`+tc.ws+"://"+strings.TrimPrefix(base, tc.scheme+"://")+"/ws?token=") {
				t.Errorf("browser snippet does not open %s://…/ws:\n%s", tc.ws, banner)
			}
			bobSays := map[string]string{"403": "answers 403", "101 close 3003": "answers 101, then closes with 3003"}[tc.bobWS]
			if !strings.Contains(banner, "with bob's token (no ws scope) the same command "+bobSays) {
				t.Errorf("banner does not say bob's WebSocket handshake %s:\n%s", bobSays, banner)
			}

			var cmds []string
			sc := bufio.NewScanner(strings.NewReader(banner))
			for sc.Scan() {
				if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "curl ") {
					cmd, _, _ := strings.Cut(line, "  #")
					cmds = append(cmds, strings.TrimSpace(cmd))
				}
			}
			want := []string{"200", "200", "401", "101"}
			if len(cmds) != len(want) {
				t.Fatalf("demo printed %d curl commands; want %d:\n%s", len(cmds), len(want), banner)
			}
			if !strings.Contains(cmds[1], "--cookie '"+tc.cookie+"=") {
				t.Errorf("cookie command %q; want the cookie %s", cmds[1], tc.cookie)
			}
			for i, cmd := range cmds {
				if !strings.Contains(cmd, base) {
					t.Errorf("command %q does not use the server's URL %s", cmd, base)
				}
				got := curlStatus(t, cmd)
				if got.status != want[i] {
					t.Errorf("%s\n  answered %.200q; want status %s", cmd, got.raw, want[i])
				}
				if i == 3 && !strings.Contains(got.raw, `{"type":"welcome","sub":"alice"`) {
					t.Errorf("WebSocket command printed %.300q; want the welcome for alice", got.raw)
				}
			}
			bobCmd := strings.Replace(cmds[3], alice[1], bob[1], 1)
			if got := curlStatus(t, bobCmd); got.status != tc.bobWS {
				t.Errorf("the WebSocket command with bob's token answered %q (%.200q); want %s", got.status, got.raw, tc.bobWS)
			}
		})
	}
}

// curlAnswer is what a printed curl command wrote: the status of the
// response, followed by " close <code>" when it was a 101 whose first
// frame is a close.
type curlAnswer struct{ status, raw string }

var statusLine = regexp.MustCompile(`^HTTP/[0-9.]+ (\d{3})`)

func curlStatus(t *testing.T, cmd string) curlAnswer {
	t.Helper()
	out, _ := exec.Command("sh", "-c", cmd).Output() // the WebSocket one ends by --max-time
	raw := string(out)
	m := statusLine.FindStringSubmatch(raw)
	if m == nil {
		return curlAnswer{"", raw}
	}
	a := curlAnswer{m[1], raw}
	if _, frames, ok := strings.Cut(raw, "\r\n\r\n"); ok && a.status == "101" && len(frames) >= 4 && frames[0] == 0x88 {
		a.status += fmt.Sprintf(" close %d", int(frames[2])<<8|int(frames[3]))
	}
	return a
}

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its key,
// and returns their file names.
func writeTestCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "wsauth test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestExternalTokenSystem is the -introspect-url mode: tokens from another
// process's admin API behave as the answers table says.
func TestExternalTokenSystem(t *testing.T) {
	svc := faketokensvc.New(faketokensvc.Options{ClientID: "wsauth", ClientSecret: "dev-secret"})
	ts := httptest.NewServer(svc.Handler())
	defer ts.Close()
	args := []string{"-addr", "127.0.0.1:0", "-introspect-url", ts.URL + "/introspect", "-client-id", "wsauth"}

	if err := run(context.Background(), args, noEnv, &syncBuffer{}, &syncBuffer{}); err == nil || !strings.Contains(err.Error(), "WSAUTH_CLIENT_SECRET") {
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
