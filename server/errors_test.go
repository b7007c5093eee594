package server

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"wsauth/tokens"
)

// TestAnswerInEveryMedium: answerFor decides, for each error, the HTTP
// answer, the close frame (the one that ends a connection, or close mode's
// refusal) and the in-band error message, so that the three never
// disagree.
func TestAnswerInEveryMedium(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err        error
		status     int
		code       string
		retryAfter int
		closeCode  int // 0: no close frame; close mode answers by HTTP
		reason     string
		byClose    bool // close mode answers a refused handshake with the close frame
		inBand     string
	}{
		{errNoCredential, 401, "missing_token", 0, CloseUnauthorized, "missing token", true,
			`{"type":"error","error":"missing_token"}`},
		{tokens.ErrInvalid, 401, "invalid_token", 0, CloseUnauthorized, "invalid, expired or revoked token", true,
			`{"type":"error","error":"invalid_token"}`},
		{fmt.Errorf("%w: introspection says inactive", tokens.ErrInvalid), 401, "invalid_token", 0, CloseUnauthorized, "invalid, expired or revoked token", true,
			`{"type":"error","error":"invalid_token"}`},
		{errTicketReplayed, 401, "invalid_token", 0, CloseUnauthorized, "invalid, expired or used ticket", true,
			`{"type":"error","error":"invalid_token"}`},
		{errTicketForged, 401, "invalid_token", 0, CloseUnauthorized, "invalid, expired or used ticket", true,
			`{"type":"error","error":"invalid_token"}`},
		{errTokenExpired, 401, "invalid_token", 0, CloseUnauthorized, "token expired", true,
			`{"type":"error","error":"invalid_token"}`},
		{errTokenRevoked, 401, "invalid_token", 0, CloseUnauthorized, "token revoked", true,
			`{"type":"error","error":"invalid_token"}`},
		{&scopeError{scope: "ws"}, 403, "insufficient_scope", 0, CloseForbidden, "insufficient scope: token lacks ws", true,
			`{"type":"error","error":"insufficient_scope"}`},
		{&scopeError{scope: "chat:write"}, 403, "insufficient_scope", 0, CloseForbidden, "insufficient scope: token lacks chat:write", true,
			`{"type":"error","error":"insufficient_scope"}`},
		{&scopeError{scope: "ws", lost: true}, 403, "insufficient_scope", 0, CloseForbidden, "insufficient scope", true,
			`{"type":"error","error":"insufficient_scope"}`},
		{fmt.Errorf("%w: down", tokens.ErrUnavailable), 503, "temporarily_unavailable", 5, 0, "", false,
			`{"type":"error","error":"temporarily_unavailable","retry_after":5}`},
		{&throttledError{1500 * time.Millisecond}, 429, "too_many_requests", 2, 0, "", false,
			`{"type":"error","error":"too_many_requests","retry_after":2}`},
		{errShuttingDown, 503, "temporarily_unavailable", 5, CloseGoingAway, "server shutting down", false,
			`{"type":"error","error":"temporarily_unavailable","retry_after":5}`},
		{errOriginRefused, 403, "forbidden_origin", 0, 0, "", false, `{"type":"error","error":"forbidden_origin"}`},
		{errTwoCredentials, 400, "invalid_request", 0, 0, "", false, `{"type":"error","error":"invalid_request"}`},
		{errTooManyCookies, 431, "too_many_cookies", 0, 0, "", false, `{"type":"error","error":"too_many_cookies"}`},
		{errTicketsFull, 503, "temporarily_unavailable", 30, 0, "", false,
			`{"type":"error","error":"temporarily_unavailable","retry_after":30}`},
		{errSubjectConns, 429, "too_many_connections", 5, 0, "", false,
			`{"type":"error","error":"too_many_connections","retry_after":5}`},
		{fmt.Errorf("something unclassified"), 500, "server_error", 0, 0, "", false, `{"type":"error","error":"server_error"}`},
	} {
		a := answerFor(tc.err)
		if a.status != tc.status || a.code != tc.code || a.retryAfter != tc.retryAfter {
			t.Errorf("answerFor(%v): HTTP %d %s, Retry-After %d; want %d %s, %d", tc.err, a.status, a.code, a.retryAfter, tc.status, tc.code, tc.retryAfter)
		}
		if a.closeCode != tc.closeCode || a.closeReason != tc.reason || a.refusesByClose() != tc.byClose {
			t.Errorf("answerFor(%v): close %d %q, by close in close mode %v; want %d %q, %v",
				tc.err, a.closeCode, a.closeReason, a.refusesByClose(), tc.closeCode, tc.reason, tc.byClose)
		}
		if b, _ := json.Marshal(a.message()); string(b) != tc.inBand {
			t.Errorf("answerFor(%v): in-band %s; want %s", tc.err, b, tc.inBand)
		}
	}
}
