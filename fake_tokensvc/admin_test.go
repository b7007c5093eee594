package faketokensvc_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
)

func TestAdminErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const js = "application/json"
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		wantStatus  int
		wantAllow   string
		wantDesc    string // a substring of error_description
	}{
		{"issue without sub", "POST", "/admin/tokens", js, `{"scope":"api"}`, 400, "", `missing "sub"`},
		{"issue with bad JSON", "POST", "/admin/tokens", js, `{"sub":`, 400, "", "bad JSON"},
		{"issue with unknown field", "POST", "/admin/tokens", js, `{"sub":"alice","ttl":5}`, 400, "", `unknown field "ttl"`},
		{"issue with trailing data", "POST", "/admin/tokens", js, `{"sub":"alice"} {}`, 400, "", "after the JSON object"},
		{"issue with empty body", "POST", "/admin/tokens", js, ``, 400, "", "empty body"},
		{"issue with a form body", "POST", "/admin/tokens", formType, `sub=alice`, 415, "", "application/json"},
		{"issue with a huge body", "POST", "/admin/tokens", js, `{"sub":"` + strings.Repeat("a", 65<<10) + `"}`, 413, "", "larger than"},
		{"issue with huge ttl", "POST", "/admin/tokens", js, `{"sub":"alice","ttl_seconds":9223372036854775807}`, 400, "", "out of range"},
		{"issue with GET", "GET", "/admin/tokens", "", "", 405, "POST", "GET /admin/tokens"},
		{"revoke without token", "POST", "/admin/revoke", js, `{}`, 400, "", `missing "token"`},
		{"revoke with PUT", "PUT", "/admin/revoke", js, `{"token":"x"}`, 405, "POST", "allowed methods are POST"},
		{"scope of unknown token", "PUT", "/admin/scope", js, `{"token":"x","scope":"api"}`, 404, "", "unknown"},
		{"scope with POST", "POST", "/admin/scope", js, `{}`, 405, "PUT", ""},
		{"faults with bad status", "PUT", "/admin/faults", js, `{"status":42}`, 400, "", `"status"`},
		{"faults with negative latency", "PUT", "/admin/faults", js, `{"latency_ms":-1}`, 400, "", `"latency_ms"`},
		{"faults with unknown field", "PUT", "/admin/faults", js, `{"hangup":true}`, 400, "", `unknown field "hangup"`},
		{"faults with DELETE", "DELETE", "/admin/faults", "", "", 405, "GET, HEAD, PUT", ""},
		{"introspect with GET", "GET", "/introspect", "", "", 405, "POST", ""},
		{"stats with POST", "POST", "/admin/stats", js, `{}`, 405, "GET, HEAD", ""},
		{"unknown route", "GET", "/v1/introspect", "", "", 404, "", "GET /v1/introspect"},
		{"trailing slash", "POST", "/admin/tokens/", js, `{"sub":"alice"}`, 404, "", "POST /admin/tokens/"},
		{"root", "GET", "/", "", "", 404, "", "GET /"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := e.do(t, tt.method, tt.path, tt.contentType, tt.body)
			var got struct {
				Error            string `json:"error"`
				ErrorDescription string `json:"error_description"`
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil || got.Error == "" {
				t.Errorf("%s %s: body %q; want a JSON error", tt.method, tt.path, body)
			}
			if resp.StatusCode != tt.wantStatus || !strings.Contains(got.ErrorDescription, tt.wantDesc) {
				t.Errorf("%s %s: %d %q; want %d with a description containing %q", tt.method, tt.path, resp.StatusCode, got.ErrorDescription, tt.wantStatus, tt.wantDesc)
			}
			if allow := resp.Header.Get("Allow"); allow != tt.wantAllow {
				t.Errorf("%s %s: Allow = %q; want %q", tt.method, tt.path, allow, tt.wantAllow)
			}
		})
	}
	if got := e.svc.Faults(); got != (faketokensvc.Faults{}) {
		t.Errorf("Faults() after only rejected PUTs = %+v; want none", got)
	}
}

func TestAdminTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body       string
		wantExp    time.Time
		wantActive string // prefix of the introspection answer
	}{
		{`{"sub":"alice","scope":"api ws","ttl_seconds":3600}`, epoch.Add(time.Hour), activeBody},
		{`{"sub":"alice","scope":"api ws"}`, epoch.Add(time.Hour), activeBody},
		{`{"sub":"bob","scope":"  ws  ","ttl_seconds":60}`, epoch.Add(time.Minute), `{"active":true,"sub":"bob","scope":"ws",`},
		{`{"sub":"bob","ttl_seconds":0}`, epoch, inactiveBody},
		{`{"sub":"bob","ttl_seconds":-60}`, epoch.Add(-time.Minute), inactiveBody},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			resp, body := e.do(t, "POST", "/admin/tokens", "application/json", tt.body)
			var got struct {
				Token string `json:"token"`
				Exp   int64  `json:"exp"`
			}
			if err := json.Unmarshal([]byte(body), &got); resp.StatusCode != 201 || err != nil || len(got.Token) != 43 {
				t.Fatalf("POST /admin/tokens %s: %d %s; want 201 with a 43-character token", tt.body, resp.StatusCode, body)
			}
			if got.Exp != tt.wantExp.Unix() {
				t.Errorf("POST /admin/tokens %s: exp = %d; want %d", tt.body, got.Exp, tt.wantExp.Unix())
			}
			if _, body := e.introspect(t, got.Token); !strings.HasPrefix(body, tt.wantActive) {
				t.Errorf("introspect the issued token: %s; want %s…", body, tt.wantActive)
			}
		})
	}
}

func TestAdminScopeAndRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token, _ := e.svc.Issue("alice", []string{"api", "ws"}, time.Hour)
	steps := []struct {
		method, path, body string
		wantStatus         int
		wantIntrospect     string // a substring
	}{
		{"PUT", "/admin/scope", `{"token":"` + token + `","scope":"api"}`, 204, `"scope":"api","exp"`},
		{"PUT", "/admin/scope", `{"token":"` + token + `","scope":""}`, 204, `"sub":"alice","exp"`},
		{"POST", "/admin/revoke", `{"token":"` + token + `"}`, 204, inactiveBody},
		{"POST", "/admin/revoke", `{"token":"` + token + `"}`, 204, inactiveBody},
		{"PUT", "/admin/scope", `{"token":"` + token + `","scope":"api"}`, 404, inactiveBody},
	}
	for _, s := range steps {
		if resp, body := e.do(t, s.method, s.path, "application/json", s.body); resp.StatusCode != s.wantStatus {
			t.Fatalf("%s %s: %d %s; want %d", s.method, s.path, resp.StatusCode, body, s.wantStatus)
		}
		if _, body := e.introspect(t, token); !strings.Contains(body, s.wantIntrospect) {
			t.Errorf("introspect after %s %s: %s; want it to contain %s", s.method, s.path, body, s.wantIntrospect)
		}
	}
}

func TestAdminFaultsAndStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		put  string
		want faketokensvc.Faults
		get  string
	}{
		{`{"latency_ms":250,"status":503}`, faketokensvc.Faults{Latency: 250 * time.Millisecond, Status: 503},
			`{"latency_ms":250,"status":503,"garbage":false,"hang_up":false}`},
		{`{"latency_ms":0,"status":0,"garbage":true,"hang_up":true}`, faketokensvc.Faults{Garbage: true, HangUp: true},
			`{"latency_ms":0,"status":0,"garbage":true,"hang_up":true}`},
		{`{}`, faketokensvc.Faults{}, `{"latency_ms":0,"status":0,"garbage":false,"hang_up":false}`},
	}
	for _, tt := range tests {
		if resp, body := e.do(t, "PUT", "/admin/faults", "application/json", tt.put); resp.StatusCode != 204 {
			t.Fatalf("PUT /admin/faults %s: %d %s; want 204", tt.put, resp.StatusCode, body)
		}
		if got := e.svc.Faults(); got != tt.want {
			t.Errorf("Faults() after PUT /admin/faults %s = %+v; want %+v", tt.put, got, tt.want)
		}
		if _, body := e.do(t, "GET", "/admin/faults", "", ""); body != tt.get {
			t.Errorf("GET /admin/faults after PUT %s = %s; want %s", tt.put, body, tt.get)
		}
	}

	for i := range 3 {
		e.introspect(t, "x")
		if resp, body := e.do(t, "GET", "/admin/stats", "", ""); resp.StatusCode != 200 || body != fmt.Sprintf(`{"introspections":%d}`, i+1) {
			t.Errorf("GET /admin/stats after %d introspections: %d %s", i+1, resp.StatusCode, body)
		}
	}
	if resp, body := e.do(t, "GET", "/healthz", "", ""); resp.StatusCode != 200 || body != `{"status":"ok"}` {
		t.Errorf("GET /healthz: %d %s; want 200 {\"status\":\"ok\"}", resp.StatusCode, body)
	}
}
