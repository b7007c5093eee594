package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain lets a test run the command's main in a child process (the test
// binary itself, with WSAUTH_TEST_MAIN=1), to see its exit status and
// where it writes.
func TestMain(m *testing.M) {
	if os.Getenv("WSAUTH_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runMain runs main with args in a child process and returns its exit
// status, stdout and stderr. env is added to a clean environment.
func runMain(t *testing.T, args []string, env ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append([]string{"WSAUTH_TEST_MAIN=1", "PATH=" + os.Getenv("PATH")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &exit) && ctx.Err() == nil:
		return exit.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("wsauth %q: %v (still running after 20s: it started rather than refused)\nstdout:\n%s\nstderr:\n%s", args, err, &stdout, &stderr)
	return 0, "", ""
}

// TestDemoNeverByAccident: the demo, in which anyone can sign in as
// anyone, refuses to start when the configuration says a real deployment
// was meant (an empty token-system flag, a client secret in the
// environment, an address other machines reach), unless -demo says so.
// Each refusal is an error naming the reason, before anything listens.
func TestDemoNeverByAccident(t *testing.T) {
	t.Parallel()
	secret := func(k string) string {
		if k == "WSAUTH_CLIENT_SECRET" {
			return "s3cret"
		}
		return ""
	}
	for _, tc := range []struct {
		name   string
		args   []string
		getenv func(string) string
		want   string // in the error; "" means the demo starts
	}{
		{"no flags", nil, noEnv, ""},
		{"localhost", []string{"-addr", "localhost:0"}, noEnv, ""},
		{"empty -introspect-url", []string{"-introspect-url", ""}, noEnv, "-introspect-url is given but empty"},
		{"empty -introspect-url=", []string{"-introspect-url="}, noEnv, "-introspect-url is given but empty"},
		{"empty -issuer", []string{"-issuer", ""}, noEnv, "-issuer is given but empty"},
		{"empty -jwks-url", []string{"-jwks-url="}, noEnv, "-jwks-url is given but empty"},
		{"empty -issuer with -audience", []string{"-issuer", "", "-audience", "my-api"}, noEnv, "-issuer is given but empty"},
		{"client secret set", nil, secret, "$WSAUTH_CLIENT_SECRET is set"},
		{"all interfaces", []string{"-addr", ":0"}, noEnv, "-addr :0 is not a loopback address"},
		{"unspecified IPv4", []string{"-addr", "0.0.0.0:0"}, noEnv, "-addr 0.0.0.0:0 is not a loopback address"},
		{"host name", []string{"-addr", "wsauth.example:0"}, noEnv, "-addr wsauth.example:0 is not a loopback address"},
		{"every reason at once", []string{"-introspect-url", "", "-addr", ":0"}, secret,
			"-introspect-url is given but empty; $WSAUTH_CLIENT_SECRET is set; -addr :0 is not a loopback address"},
		{"-demo overrides an empty flag", []string{"-demo", "-introspect-url", ""}, secret, ""},
		{"-demo with a token system", []string{"-demo", "-introspect-url", "http://127.0.0.1:1/introspect"}, secret,
			"-demo and -introspect-url exclude each other"},
		{"-demo with an issuer", []string{"-demo", "-issuer", "https://idp.example"}, noEnv,
			"-demo and -issuer exclude each other"},
		{"-demo=false without a token system", []string{"-demo=false"}, noEnv, "-demo=false and no token system"},
	} {
		args := append([]string{"-addr", "127.0.0.1:0"}, tc.args...)
		if tc.want == "" {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				_, out := startRun(t, args, tc.getenv)
				if !strings.Contains(out.String(), "DEMO MODE: anyone can sign in as anyone") {
					t.Errorf("run %q started without saying DEMO MODE:\n%s", tc.args, out)
				}
				if tc.name == "-demo overrides an empty flag" && !strings.Contains(out.String(), "DEMO MODE forced by -demo although -introspect-url is given but empty") {
					t.Errorf("run %q: no warning naming what -demo overrode:\n%s", tc.args, out)
				}
			})
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out := &syncBuffer{}
		err := run(ctx, args, tc.getenv, out, out)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: run %q = %v; want an error saying %q", tc.name, tc.args, err, tc.want)
		}
		if strings.Contains(out.String(), "listening") {
			t.Errorf("%s: run %q listened before refusing:\n%s", tc.name, tc.args, out)
		}
	}
}

// TestMainExitStatus runs the command as a process: a refused demo exits
// with status 1 and says why on stderr; -h prints the flags on stderr and
// exits with 0; so does -help.
func TestMainExitStatus(t *testing.T) {
	t.Parallel()
	status, stdout, stderr := runMain(t, []string{"-addr", "127.0.0.1:0", "-introspect-url", ""})
	if status != 1 || !strings.HasPrefix(stderr, "wsauth: refusing to start the demo, in which anyone can sign in as anyone: -introspect-url is given but empty") {
		t.Errorf("wsauth -introspect-url \"\": exit status %d, stderr %q; want 1 and the reason", status, stderr)
	}
	if stdout != "" {
		t.Errorf("wsauth -introspect-url \"\": stdout %q; want nothing", stdout)
	}

	status, _, stderr = runMain(t, []string{"-addr", "127.0.0.1:0"}, "WSAUTH_CLIENT_SECRET=s3cret")
	if status != 1 || !strings.Contains(stderr, "$WSAUTH_CLIENT_SECRET is set") || strings.Contains(stderr, "s3cret") {
		t.Errorf("wsauth with only WSAUTH_CLIENT_SECRET: exit status %d, stderr %q; want 1, naming the variable but not its value", status, stderr)
	}

	for _, h := range []string{"-h", "-help"} {
		status, stdout, stderr = runMain(t, []string{h})
		if status != 0 || stdout != "" || !strings.HasPrefix(stderr, "Usage: wsauth [flags]") || !strings.Contains(stderr, "-introspect-url") {
			t.Errorf("wsauth %s: exit status %d, stdout %q, stderr %.100q; want 0, nothing, and the usage on stderr", h, status, stdout, stderr)
		}
	}
	status, _, stderr = runMain(t, []string{"-no-such-flag"})
	if status != 1 || stderr != "wsauth: flag provided but not defined: -no-such-flag (wsauth -h lists the flags)\n" {
		t.Errorf("wsauth -no-such-flag: exit status %d, stderr %q; want 1 and one line", status, stderr)
	}
}

func TestLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:8080":          true,
		"127.9.9.9:8080":          true,
		"[::1]:8080":              true,
		"[::ffff:127.0.0.1]:8080": true,
		"localhost:8080":          true,
		"LocalHost:8080":          true,
		":8080":                   false,
		"0.0.0.0:8080":            false,
		"[::]:8080":               false,
		"192.0.2.1:8080":          false,
		"wsauth.example:8080":     false,
		"localhost.example:8080":  false,
		"127.0.0.1":               false, // no port: not an address net.Listen takes
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v; want %v", addr, got, want)
		}
	}
}

// TestDemoTLSCookie: the demo served over TLS names its cookie with the
// __Host- prefix, which browsers accept only with Secure, Path=/ and no
// Domain, and sets it so; the cookie then works. An explicit -cookie-name
// wins.
func TestDemoTLSCookie(t *testing.T) {
	t.Parallel()
	certFile, keyFile := writeTestCert(t)
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	t.Cleanup(client.CloseIdleConnections)

	for _, tc := range []struct {
		args []string
		name string
	}{
		{nil, "__Host-token"},
		{[]string{"-cookie-name", "sid"}, "sid"},
	} {
		base, _ := startRun(t, append([]string{"-addr", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile}, tc.args...), noEnv)
		resp, err := client.Post(base+"/dev/login", "application/json", strings.NewReader(`{"sub":"alice","scope":"api"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		set := resp.Header.Get("Set-Cookie")
		cookies := resp.Cookies()
		if resp.StatusCode != 200 || len(cookies) != 1 {
			t.Fatalf("flags %q: POST /dev/login over TLS: %d, Set-Cookie %q; want 200 and one cookie", tc.args, resp.StatusCode, set)
		}
		ck := cookies[0]
		if ck.Name != tc.name || !ck.Secure || !ck.HttpOnly || ck.Path != "/" || ck.Domain != "" || strings.Contains(strings.ToLower(set), "domain=") {
			t.Errorf("flags %q: Set-Cookie %q; want %s, Secure, HttpOnly, Path=/, no Domain", tc.args, set, tc.name)
		}
		req, _ := http.NewRequest("GET", base+"/api/me", nil)
		req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		resp, err = client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("flags %q: GET /api/me with the %s cookie: %d; want 200", tc.args, ck.Name, resp.StatusCode)
		}
	}
}
