package faketokensvc_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
)

// introspectRequest builds an introspection of token with the default client
// credentials.
func introspectRequest(t testing.TB, baseURL, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", baseURL+"/introspect", strings.NewReader(form(token)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", formType)
	req.SetBasicAuth("wsauth", "dev-secret")
	return req
}

func TestFaults(t *testing.T) {
	t.Parallel()
	wantStatus := func(code int) func(*testing.T, *http.Response, string, error) {
		return func(t *testing.T, resp *http.Response, body string, err error) {
			if err != nil {
				t.Fatalf("introspect: %v; want status %d", err, code)
			}
			var e struct{ Error string }
			if resp.StatusCode != code || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
				t.Errorf("introspect: %d %s; want %d with a JSON error", resp.StatusCode, body, code)
			}
		}
	}
	tests := []struct {
		name   string
		faults faketokensvc.Faults
		check  func(t *testing.T, resp *http.Response, body string, err error)
	}{
		{"none", faketokensvc.Faults{}, func(t *testing.T, resp *http.Response, body string, err error) {
			if err != nil || body != activeBody {
				t.Errorf("introspect: %q, %v; want %s", body, err, activeBody)
			}
		}},
		{"status 500", faketokensvc.Faults{Status: 500}, wantStatus(500)},
		{"status 503", faketokensvc.Faults{Status: 503}, wantStatus(503)},
		{"garbage", faketokensvc.Faults{Garbage: true}, func(t *testing.T, resp *http.Response, body string, err error) {
			if err != nil || resp.StatusCode != 200 || json.Valid([]byte(body)) {
				t.Errorf("introspect: %v, %q; want 200 with a body that is not JSON", err, body)
			}
		}},
		{"hang up", faketokensvc.Faults{HangUp: true}, func(t *testing.T, resp *http.Response, body string, err error) {
			if err == nil {
				t.Errorf("introspect: %d %q; want a transport error", resp.StatusCode, body)
			}
		}},
		{"hang up before status", faketokensvc.Faults{HangUp: true, Status: 500}, func(t *testing.T, resp *http.Response, body string, err error) {
			if err == nil {
				t.Errorf("introspect: %d %q; want a transport error", resp.StatusCode, body)
			}
		}},
		{"latency, then status", faketokensvc.Faults{Latency: 20 * time.Millisecond, Status: 502}, wantStatus(502)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			token, _ := e.svc.Issue("alice", []string{"api", "ws"}, time.Hour)
			e.svc.SetFaults(tt.faults)
			if got := e.svc.Faults(); got != tt.faults {
				t.Errorf("Faults() = %+v; want %+v", got, tt.faults)
			}
			start := time.Now()
			var body []byte
			resp, err := e.srv.Client().Do(introspectRequest(t, e.srv.URL, token))
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if elapsed := time.Since(start); elapsed < tt.faults.Latency {
				t.Errorf("introspect took %v; want at least the injected %v", elapsed, tt.faults.Latency)
			}
			tt.check(t, resp, strings.TrimSpace(string(body)), err)
			if got := e.svc.Introspections(); got != 1 {
				t.Errorf("Introspections() = %d; want 1", got)
			}
			// Faults never hide a client authentication failure.
			resp, _ = e.do(t, "POST", "/introspect", formType, form(token), basicAuth("wsauth", "wrong"))
			if !tt.faults.HangUp && resp.StatusCode != 401 {
				t.Errorf("introspect with a wrong secret under %+v: status = %d; want 401", tt.faults, resp.StatusCode)
			}
		})
	}
}

func TestLatencyEndsWhenClientGoesAway(t *testing.T) {
	t.Parallel()
	svc := faketokensvc.New(faketokensvc.Options{})
	svc.SetFaults(faketokensvc.Faults{Latency: 20 * time.Second})
	token, _ := svc.Issue("alice", nil, time.Hour)
	returned := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { returned <- struct{}{} }()
		svc.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	client := *srv.Client()
	client.Timeout = 100 * time.Millisecond
	resp, err := client.Do(introspectRequest(t, srv.URL, token))
	if netErr, ok := errors.AsType[net.Error](err); !ok || !netErr.Timeout() {
		if err == nil {
			resp.Body.Close()
		}
		t.Fatalf("introspect with a 100ms client timeout against a 20s latency: error %v; want a timeout", err)
	}
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("handler still running 5s after the client went away; want it to return promptly")
	}
}
