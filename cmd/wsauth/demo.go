package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
	"wsauth/tokens"
)

// The demo: with no token system named, wsauth runs an embedded fake token
// service, prints two ready tokens and commands that work as printed, and
// lets anyone sign in as anyone (POST /dev/login). This file decides
// whether the demo may start at all, and prints its banner.

// demoCookieName is the demo's cookie under TLS. The __Host- prefix
// makes a browser accept the cookie only if it is Secure, has Path=/
// and no Domain (RFC 6265bis §4.1.3.2), so a page on another port or
// subdomain cannot plant a cookie of that name to shadow it.
const demoCookieName = "__Host-" + server.DefaultCookieName

// chooseDemo decides whether run starts the demo: when no token-system
// flag has a value. -demo beside a token system and -demo=false without
// one are errors, and so is a demo that looks like an accident
// (checkDemo). It returns the reasons checkDemo found when -demo forces
// the demo anyway, for the log.
func chooseDemo(o options, getenv func(string) string) (demo bool, forced []string, err error) {
	demo = len(o.tokenSystem) == 0
	switch {
	case o.demo && !demo:
		return false, nil, fmt.Errorf("-demo and %s exclude each other", strings.Join(o.tokenSystem, ", "))
	case o.set["demo"] && !o.demo && demo:
		return false, nil, fmt.Errorf("-demo=false and no token system: name one (%s)", strings.Join(prefixed(tokenSystemFlags), ", "))
	case !demo:
		return false, nil, nil
	}
	forced, err = checkDemo(o, getenv)
	return true, forced, err
}

// checkDemo decides whether the demo may run, given that no token system
// was named. The demo lets anyone who reaches the server sign in as
// anyone, so it must never start by accident: an empty token-system flag,
// a client secret in the environment or a non-loopback address say that a
// real deployment was meant. It returns those reasons; without -demo, any
// reason is an error.
func checkDemo(o options, getenv func(string) string) (reasons []string, err error) {
	for _, name := range o.emptyTokenSystem {
		reasons = append(reasons, name+" is given but empty")
	}
	if getenv("WSAUTH_CLIENT_SECRET") != "" {
		reasons = append(reasons, "$WSAUTH_CLIENT_SECRET is set")
	}
	if !loopback(o.addr) {
		reasons = append(reasons, "-addr "+o.addr+" is not a loopback address")
	}
	if len(reasons) == 0 || o.demo {
		return reasons, nil
	}
	return reasons, fmt.Errorf("refusing to start the demo, in which anyone can sign in as anyone: %s. "+
		"Name the token system (%s), or pass -demo to run the demo anyway",
		strings.Join(reasons, "; "), strings.Join(prefixed(tokenSystemFlags), ", "))
}

// loopback reports whether addr (host:port) is reachable from this machine
// only: "localhost" or a loopback IP. An empty host listens on every
// interface, and any other name could resolve anywhere.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// startDemoTokenService runs the fake token service in-process, on a random
// loopback port, and returns it with the validator that introspects it.
func startDemoTokenService(o options) (*faketokensvc.Service, *tokens.Cache, func(), error) {
	in := &tokens.Introspector{ClientID: o.clientID, ClientSecret: "demo-secret"}
	svc := faketokensvc.New(faketokensvc.Options{ClientID: in.ClientID, ClientSecret: in.ClientSecret})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, nil, err
	}
	hs := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	in.URL = "http://" + ln.Addr().String() + "/introspect"
	return svc, tokens.NewCache(in, tokens.CacheConfig{TTL: offIfZero(o.cacheTTL)}), func() { hs.Close() }, nil
}

// announceDemo says, in the log and on stdout, that anyone can sign in as
// anyone, and why the demo runs although -demo had to force it, then
// prints the banner.
func announceDemo(logger *slog.Logger, stdout io.Writer, svc *faketokensvc.Service, forced []string, b banner) {
	logger.Warn("DEMO MODE: anyone can sign in as anyone", "sign_in", b.base+"/dev/login",
		"real_token_system", strings.Join(prefixed(tokenSystemFlags), ", "))
	for _, r := range forced {
		logger.Warn("DEMO MODE forced by -demo although "+r, "url", b.base)
	}
	printDemo(stdout, svc, b)
}

// banner is what the demo's printed commands depend on.
type banner struct {
	base       string // http://host:port or https://host:port
	cookieName string
	queryToken bool   // ?token= accepted
	wsReject   string // server.RejectHTTP or server.RejectClose

	apiScope, wsScope string // the scopes of /api/me and /ws
}

// printDemo prints two ready tokens and commands that work as printed
// under the flags given (run_test.go runs them).
func printDemo(w io.Writer, svc *faketokensvc.Service, b banner) {
	alice, _ := svc.Issue("alice", []string{b.apiScope, b.wsScope}, 24*time.Hour)
	bob, _ := svc.Issue("bob", []string{b.apiScope}, 24*time.Hour)
	host, isTLS := strings.CutPrefix(b.base, "https://")
	host = strings.TrimPrefix(host, "http://")
	curl, curlWS, ws := "curl -i", "curl -i -N", "ws"
	if isTLS {
		// -k: the certificate is the operator's own, and rarely valid for
		// 127.0.0.1. --http1.1: curl would otherwise speak HTTP/2, which
		// has no Upgrade (RFC 9113 §8.2.2).
		curl, curlWS, ws = "curl -i -k", "curl -i -N -k --http1.1", "wss"
	}
	fmt.Fprintf(w, `
################################################################################
  DEMO MODE: anyone can sign in as anyone. Not for production.
  Any visitor can POST /dev/login as any subject with any scope. For a real
  token system, start with %[6]s (docs/TOKEN-SYSTEMS.md).
################################################################################

wsauth demo: open %[1]s/ in a browser to sign in and try every way of connecting.

An embedded fake token service issued two tokens (valid 24h).
  alice (scopes %[7]s %[8]s): %[2]s
  bob   (scope  %[7]s):    %[3]s

Try HTTP:
  %[4]s -H 'Authorization: Bearer %[2]s' %[1]s/api/me
  %[4]s --cookie '%[5]s=%[3]s' %[1]s/api/me
  %[4]s %[1]s/api/me                                   # 401, no token
`, b.base, alice, bob, curl, b.cookieName, strings.Join(prefixed(tokenSystemFlags), " or "), b.apiScope, b.wsScope)
	if isTLS {
		fmt.Fprintln(w, "  (-k: curl does not check the certificate; do that only on loopback, as here)")
	}
	bobAnswer := "answers 403"
	if b.wsReject == server.RejectClose {
		bobAnswer = "answers 101, then closes with 3003 (-ws-reject=close)"
	}
	fmt.Fprintf(w, `
Try a WebSocket handshake (prints 101 and the welcome frame, then stops after 3 s):
  %[1]s --max-time 3 -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H 'Authorization: Bearer %[2]s' %[3]s/ws
  # with bob's token (no %[5]s scope) the same command %[4]s
`, curlWS, alice, b.base, bobAnswer, b.wsScope)
	if b.queryToken {
		fmt.Fprintf(w, `
From a browser console on %[1]s/healthz:
  const ws = new WebSocket("%[4]s://%[2]s/ws?token=%[3]s");
  ws.onmessage = (e) => console.log(e.data); ws.onopen = () => ws.send("hello");
`, b.base, host, alice, ws)
	}
	fmt.Fprintln(w)
}
