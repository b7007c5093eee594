package integration_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
)

// Conformance mode: with WSAUTH_TARGET (the server under test)
// and WSAUTH_TOKENSVC (a running fake token service that the server
// introspects at) both set, newEnv talks to them over HTTP instead of
// starting its own servers, so that the black-box tests grouped in
// TestConformance run against any implementation. Every other test, and
// any that asks for more than the conformance profile (a server.Config of
// its own, TLS, a timeout), skips itself there.
//
// The target must be started with the conformance profile: the settings
// the in-process env gets from withProfile. WSAUTH_TARGET_PID, when set, is
// the target's process id, which the shutdown capability stops: the
// server's own, not that of `go run`, which does not pass SIGTERM on to the
// server it runs.
var (
	remoteTarget   = strings.TrimSuffix(os.Getenv("WSAUTH_TARGET"), "/")
	remoteTokenSvc = strings.TrimSuffix(os.Getenv("WSAUTH_TOKENSVC"), "/")
)

// remote reports whether the suite runs against WSAUTH_TARGET.
func remote() bool { return remoteTarget != "" && remoteTokenSvc != "" }

// Conformance profile: how a target under WSAUTH_TARGET must be configured.
// For cmd/wsauth: -allowed-origins https://app.example.com -recheck 1s
// -auth-burst 0 (the suite sends hundreds of failing requests from one
// address; a failure throttle would answer them 429). cmd/wsauth-minimal
// has none of these options, and fails the capabilities that need them.
const (
	profileOrigin  = "https://app.example.com"
	profileRecheck = time.Second
)

// tokenService is what the tests ask of the token system: the fake in
// process (*faketokensvc.Service), or a fake elsewhere through its admin
// API (remoteTokenService).
type tokenService interface {
	Issue(sub string, scopes []string, ttl time.Duration) (token string, exp time.Time)
	Revoke(token string)
	SetScopes(token string, scopes []string) bool
	SetFaults(f faketokensvc.Faults)
	Introspections() int64
}

// remoteTokenService drives a fake token service over its HTTP admin API
// (docs/PORTING.md §4). Failures end the test that asked.
type remoteTokenService struct {
	t      testing.TB
	base   string
	client *http.Client
}

func (r *remoteTokenService) do(method, path string, body any, want int) []byte {
	r.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, r.base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		r.t.Fatalf("token service %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		r.t.Fatalf("token service %s %s: %d %s; want %d", method, path, resp.StatusCode, reply, want)
	}
	return reply
}

// Issue asks POST /admin/tokens; ttl is rounded up to whole seconds, the
// API's unit.
func (r *remoteTokenService) Issue(sub string, scopes []string, ttl time.Duration) (string, time.Time) {
	r.t.Helper()
	secs := int64((ttl + time.Second - 1) / time.Second)
	reply := r.do("POST", "/admin/tokens", map[string]any{"sub": sub, "scope": strings.Join(scopes, " "), "ttl_seconds": secs}, http.StatusCreated)
	var m struct {
		Token string `json:"token"`
		Exp   int64  `json:"exp"`
	}
	if err := json.Unmarshal(reply, &m); err != nil || m.Token == "" {
		r.t.Fatalf("token service POST /admin/tokens: reply %q", reply)
	}
	return m.Token, time.Unix(m.Exp, 0)
}

func (r *remoteTokenService) Revoke(token string) {
	r.t.Helper()
	r.do("POST", "/admin/revoke", map[string]string{"token": token}, http.StatusNoContent)
}

func (r *remoteTokenService) SetScopes(token string, scopes []string) bool {
	r.t.Helper()
	r.do("PUT", "/admin/scope", map[string]string{"token": token, "scope": strings.Join(scopes, " ")}, http.StatusNoContent)
	return true
}

// SetFaults skips the test: faults on a token service that every test of
// the run shares would fail the others.
func (r *remoteTokenService) SetFaults(faketokensvc.Faults) {
	r.t.Skip("conformance mode: fault injection would disturb the other tests on the shared token service")
}

// Introspections skips the test: the shared service's count moves with
// every test running in parallel.
func (r *remoteTokenService) Introspections() int64 {
	r.t.Skip("conformance mode: the shared token service's introspection count is not this test's")
	return 0
}

// newRemoteEnv is newEnv in conformance mode.
func newRemoteEnv(t testing.TB, cfg envConfig) *env {
	t.Helper()
	if n := t.Name(); n != "TestConformance" && !strings.HasPrefix(n, "TestConformance/") {
		// Other tests may reach into the in-process server (e.srv, its
		// logs, its clock); TestConformance's are black-box only.
		t.Skip("conformance mode runs TestConformance's tests only")
	}
	var none, profile envConfig
	withProfile()(&profile)
	if !reflect.DeepEqual(cfg, none) && !reflect.DeepEqual(cfg, profile) {
		t.Skip("conformance mode: this test configures an in-process server (server.Config, TLS, timeouts)")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	return &env{
		t:      t,
		svc:    &remoteTokenService{t: t, base: remoteTokenSvc, client: client},
		svcURL: remoteTokenSvc,
		URL:    remoteTarget,
		client: client,
		log:    &testLog{t: t, done: true},
	}
}

// inProcess skips the test in conformance mode, where what it needs (the
// server's Go API or its logs) is not there; why says what.
func (e *env) inProcess(why string) {
	e.t.Helper()
	if remote() {
		e.t.Skipf("conformance mode: %s needs the in-process server", why)
	}
}

// withProfile configures the in-process server as a conformance target
// must be configured; in conformance mode the target is trusted to be. A
// test with any other option skips itself in conformance mode.
func withProfile() envOption {
	return func(c *envConfig) {
		c.server.AllowedOrigins = []string{profileOrigin}
		c.server.Recheck = profileRecheck
	}
}

// describeTarget names what the suite runs against, for the verdicts.
func describeTarget() string {
	if remote() {
		return fmt.Sprintf("%s (token service %s)", remoteTarget, remoteTokenSvc)
	}
	return "in-process servers"
}
