package faketokensvc_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	faketokensvc "wsauth/fake_tokensvc"
)

// Issue a token in process and introspect it over HTTP, as a client of the
// real token system would (RFC 7662 §2.1).
func Example() {
	clock := func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }
	svc := faketokensvc.New(faketokensvc.Options{Now: clock})
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()

	token, _ := svc.Issue("alice", []string{"api", "ws"}, time.Hour)
	introspect := func() string {
		body := strings.NewReader(url.Values{"token": {token}}.Encode())
		req, _ := http.NewRequest("POST", srv.URL+"/introspect", body)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("wsauth", "dev-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Status + " " + string(b)
	}

	fmt.Print(introspect())
	svc.Revoke(token)
	fmt.Print(introspect())
	// Output:
	// 200 OK {"active":true,"sub":"alice","scope":"api ws","exp":1893459600,"iat":1893456000,"client_id":"wsauth","token_type":"Bearer"}
	// 200 OK {"active":false}
}
