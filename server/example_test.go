package server_test

import (
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
