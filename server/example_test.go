package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"golang.org/x/net/websocket"

	faketokensvc "wsauth/fake_tokensvc"
	"wsauth/server"
	"wsauth/tokens"
)

// Example wires the server to a token system and opens a WebSocket with a
// bearer token from Go, with golang.org/x/net/websocket's client.
func Example() {
	// The external token system; here the fake, on a real socket.
	svc := faketokensvc.New(faketokensvc.Options{ClientID: "wsauth", ClientSecret: "s3cret"})
	tokensvc := httptest.NewServer(svc.Handler())
	defer tokensvc.Close()

	introspector := &tokens.Introspector{URL: tokensvc.URL + "/introspect", ClientID: "wsauth", ClientSecret: "s3cret"}
	srv := server.New(server.Config{Validator: tokens.NewCache(introspector, tokens.CacheConfig{})})
	ts := httptest.NewServer(srv)
	defer ts.Close()

	token, _ := svc.Issue("alice", []string{"api", "ws"}, time.Hour)

	cfg, _ := websocket.NewConfig(strings.Replace(ts.URL, "http", "ws", 1)+"/ws", ts.URL)
	cfg.Header = http.Header{"Authorization": {"Bearer " + token}}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer ws.Close()

	var welcome, echo struct{ Type, Sub, Data string }
	websocket.JSON.Receive(ws, &welcome)
	websocket.Message.Send(ws, "hello")
	websocket.JSON.Receive(ws, &echo)
	fmt.Println(welcome.Type, welcome.Sub)
	fmt.Println(echo.Type, echo.Sub, echo.Data)
	// Output:
	// welcome alice
	// echo alice hello
}

// Example_refusedHandshake shows how a Go client tells "sign in again" (401)
// from "forbidden" (403). x/net/websocket's Dial says only "bad status", so
// on that error the client asks once more through net/http, with the
// upgrade headers: the server answers exactly as it answered the handshake,
// and net/http shows the status and the WWW-Authenticate challenge.
func Example_refusedHandshake() {
	svc := faketokensvc.New(faketokensvc.Options{ClientID: "wsauth", ClientSecret: "s3cret"})
	tokensvc := httptest.NewServer(svc.Handler())
	defer tokensvc.Close()
	introspector := &tokens.Introspector{URL: tokensvc.URL + "/introspect", ClientID: "wsauth", ClientSecret: "s3cret"}
	ts := httptest.NewServer(server.New(server.Config{Validator: tokens.NewCache(introspector, tokens.CacheConfig{})}))
	defer ts.Close()

	bob, _ := svc.Issue("bob", []string{"api"}, time.Hour) // no ws scope
	for _, token := range []string{"not-a-token", bob} {
		cfg, _ := websocket.NewConfig(strings.Replace(ts.URL, "http", "ws", 1)+"/ws", ts.URL)
		cfg.Header = http.Header{"Authorization": {"Bearer " + token}}
		ws, err := websocket.DialConfig(cfg)
		var de *websocket.DialError
		if errors.As(err, &de) && de.Err == websocket.ErrBadStatus {
			// x/net says only "bad status": ask again through net/http,
			// which shows the status and the WWW-Authenticate challenge.
			status, challenge := handshakeStatus(ts.URL+"/ws", cfg.Header)
			fmt.Println(status, challenge)
		} else if err == nil {
			ws.Close()
		}
	}
	// Output:
	// 401 Bearer realm="wsauth", error="invalid_token"
	// 403 Bearer realm="wsauth", error="insufficient_scope", scope="ws"
}

// Example_ownValidator plugs in a token system that package tokens does not
// speak: any tokens.Validator will do, here the application's own store of
// sessions. Its errors wrap tokens.ErrInvalid (401) or tokens.ErrUnavailable
// (503), and the cache in front spares it a call per request.
func Example_ownValidator() {
	sessions := map[string]tokens.Principal{
		"session-1": {Subject: "alice", Scopes: []string{"api", "ws"}, Expiry: time.Now().Add(time.Hour)},
	}
	lookup := tokens.ValidatorFunc(func(ctx context.Context, token string) (tokens.Principal, error) {
		p, ok := sessions[token]
		if !ok {
			return tokens.Principal{}, fmt.Errorf("unknown session: %w", tokens.ErrInvalid)
		}
		return p, nil
	})
	srv := server.New(server.Config{Validator: tokens.NewCache(lookup, tokens.CacheConfig{})})
	ts := httptest.NewServer(srv)
	defer ts.Close()

	for _, token := range []string{"session-1", "session-2"} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/me", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(token, resp.Status)
	}
	// Output:
	// session-1 200 OK
	// session-2 401 Unauthorized
}

// handshakeStatus sends a WebSocket handshake to url through net/http and
// returns the status and challenge of the answer. A 101 is closed at once.
func handshakeStatus(url string, h http.Header) (int, string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, ""
	}
	req.Header = h.Clone()
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") // any 16 bytes in base64
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}
