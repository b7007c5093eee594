package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer that run's logger and the test can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listeningRE = regexp.MustCompile(`msg="fake token service listening" url=(\S+)`)

// waitForURL polls out for the line run logs once it listens.
func waitForURL(t *testing.T, out *syncBuffer, done <-chan error) string {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("run returned %v before listening; output:\n%s", err, out)
		case <-deadline:
			t.Fatalf("run did not log its URL within 10s; output:\n%s", out)
		case <-tick.C:
		}
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	getenv := func(key string) string {
		if key == "TOKENSVC_CLIENT_SECRET" {
			return "s3cret"
		}
		return ""
	}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-client-id", "demo"}, getenv, &out) }()
	base := waitForURL(t, &out, done)

	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Post(base+"/admin/tokens", "application/json", strings.NewReader(`{"sub":"alice","scope":"api ws"}`))
	if err != nil {
		t.Fatal(err)
	}
	var issued struct{ Token string }
	err = json.NewDecoder(resp.Body).Decode(&issued)
	resp.Body.Close()
	if resp.StatusCode != 201 || err != nil {
		t.Fatalf("POST /admin/tokens: status %d, decode error %v; want 201", resp.StatusCode, err)
	}

	req, _ := http.NewRequest("POST", base+"/introspect", strings.NewReader(url.Values{"token": {issued.Token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("demo", "s3cret")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Active   bool
		Sub      string
		ClientID string `json:"client_id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || !got.Active || got.Sub != "alice" || got.ClientID != "demo" {
		t.Errorf("POST /introspect: %+v, decode error %v; want active for alice, client demo", got, err)
	}

	// Discovery at its own URL names it as the issuer, with its keys.
	resp, err = client.Get(base + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	err = json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if err != nil || md.Issuer != base || md.JWKSURI != base+"/.well-known/jwks.json" {
		t.Errorf("GET /.well-known/openid-configuration: %+v, %v; want issuer %s and its JWK set", md, err, base)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel = %v; want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of cancel")
	}
	for _, leak := range []string{issued.Token, "s3cret"} {
		if strings.Contains(out.String(), leak) {
			t.Errorf("log contains a token or the client secret:\n%s", out.String())
		}
	}
	if strings.Contains(out.String(), "default client secret") {
		t.Errorf("log warns of the default secret although TOKENSVC_CLIENT_SECRET was set:\n%s", out.String())
	}
}

func TestRunErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"busy port", []string{"-addr", busy.Addr().String()}, "listen"},
		{"unknown flag", []string{"-port", "1"}, "flag provided but not defined"},
		{"stray argument", []string{"serve"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out syncBuffer
			err := run(context.Background(), tt.args, func(string) string { return "" }, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v; want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}
