package server

import (
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The demo page and demo sign-in: GET / serves a page, embedded in the
// binary, on which a person signs in and opens /ws each way a browser can
// carry a credential. In demo mode (Config.DemoIssuer set), POST /dev/login
// issues a token from the embedded fake token service; otherwise the page
// says that sign-in belongs to the external token system.

// Issuer issues tokens for the demo's sign-in (Config.DemoIssuer).
// *faketokensvc.Service has this method; the interface is declared here so
// that package server does not depend on the fake.
type Issuer interface {
	// Issue returns a new token for sub carrying scopes, valid for ttl,
	// and its expiry.
	Issue(sub string, scopes []string, ttl time.Duration) (token string, exp time.Time)
}

//go:embed static
var staticFS embed.FS

var pageTmpl = template.Must(template.ParseFS(staticFS, "static/index.html"))

// pageData is what index.html is told about the configuration.
type pageData struct {
	Demo              bool
	QueryToken        bool
	RejectMode        string
	APIScope, WSScope string
}

// handleDemoPage serves the page. Its scripts and styles are separate
// files, so that the Content-Security-Policy can forbid inline script.
func (s *Server) handleDemoPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		setPageHeaders(h, r.Host)
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		pageTmpl.Execute(w, pageData{Demo: s.cfg.DemoIssuer != nil, QueryToken: !s.cfg.NoQueryToken, RejectMode: s.cfg.WSReject,
			APIScope: s.cfg.APIScope, WSScope: s.cfg.WSScope})
	})
}

// handleStatic serves the page's scripts and stylesheet, and nothing else
// of the embedded files. wsauth.js is the browser client (docs/CLIENT.md),
// served here so that applications can load it from the server they talk to.
func (s *Server) handleStatic() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch name := strings.TrimPrefix(r.URL.Path, "/static/"); name {
		case "app.js", "wsauth.js", "style.css":
			setPageHeaders(w.Header(), r.Host)
			http.ServeFileFS(w, r, staticFS, "static/"+name)
		default:
			http.NotFound(w, r)
		}
	})
}

// setPageHeaders keeps the page to its own origin: scripts and styles from
// this server only, connections to this server only (the ws: and wss:
// sources are spelled out, since older browsers do not match them to
// 'self'), no framing by other sites, and no Referer, which would carry a
// URL's query string elsewhere.
func setPageHeaders(h http.Header, host string) {
	connect := "'self'"
	if validHost(host) {
		connect += " ws://" + host + " wss://" + host
	}
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src "+connect+"; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// validHost reports whether host may be written into a header as is.
func validHost(host string) bool {
	if host == "" || len(host) > 255 {
		return false
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c)) {
			return false
		}
	}
	return true
}

// loginRequest is POST /dev/login's body.
type loginRequest struct {
	Sub   string `json:"sub"`
	Scope string `json:"scope"` // space-separated (RFC 6749 §3.3); default the two routes' scopes
	TTL   int    `json:"ttl"`   // seconds; default Config.DemoTTL
}

// loginMsg is POST /dev/login's answer. It holds the token, which only a
// demo may hand to JavaScript: the page needs it to show the query and
// subprotocol ways. A real sign-in sets the HttpOnly cookie and nothing
// else.
type loginMsg struct {
	Sub       string   `json:"sub"`
	Scope     []string `json:"scope"`
	Token     string   `json:"token"`
	ExpiresIn int      `json:"expires_in"`
	Exp       int64    `json:"exp"`
}

const (
	maxDemoSub    = 64
	maxDemoScopes = 8
	maxDemoTTL    = 24 * time.Hour
)

// parseLogin checks a sign-in request: a short printable subject, scopes
// of RFC 6749 §3.3 characters (defaultScope when none), a lifetime of 1 s
// to 24 h (defaultTTL when none).
func parseLogin(req loginRequest, defaultScope string, defaultTTL time.Duration) (sub string, scopes []string, ttl time.Duration, err error) {
	switch {
	case req.Sub == "" || len(req.Sub) > maxDemoSub || !utf8.ValidString(req.Sub):
		return "", nil, 0, badRequest("sub must be 1 to 64 bytes of text")
	case strings.IndexFunc(req.Sub, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0:
		return "", nil, 0, badRequest("sub must be printable, without spaces")
	}
	scope := req.Scope
	if scope == "" {
		scope = defaultScope
	}
	scopes = strings.Fields(scope)
	if len(scopes) > maxDemoScopes {
		return "", nil, 0, badRequest("at most 8 scopes")
	}
	for _, sc := range scopes {
		if len(sc) > 64 || strings.IndexFunc(sc, func(r rune) bool { return r < 0x21 || r > 0x7e || r == '"' || r == '\\' }) >= 0 {
			return "", nil, 0, badRequest("a scope is 1 to 64 characters of RFC 6749 §3.3")
		}
	}
	ttl = defaultTTL
	if req.TTL != 0 {
		ttl = time.Duration(req.TTL) * time.Second
		if req.TTL < 1 || ttl > maxDemoTTL {
			return "", nil, 0, badRequest("ttl must be 1 to 86400 seconds")
		}
	}
	return req.Sub, scopes, ttl, nil
}

// handleLogin issues a demo token and sets it as the cookie.
func (s *Server) handleLogin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req loginRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.writeError(w, r, badRequest(`the body must be JSON: {"sub":"alice","scope":"`+s.cfg.APIScope+" "+s.cfg.WSScope+`","ttl":3600}`))
			return
		}
		sub, scopes, ttl, err := parseLogin(req, s.cfg.APIScope+" "+s.cfg.WSScope, s.cfg.DemoTTL)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		token, exp := s.cfg.DemoIssuer.Issue(sub, scopes, ttl)
		if rl := logRecordFrom(r.Context()); rl != nil {
			rl.subject = sub
		}
		maxAge := int(exp.Sub(s.cfg.Now()).Round(time.Second) / time.Second)
		http.SetCookie(w, s.cookie(r, token, max(maxAge, 1)))
		writeJSON(w, http.StatusOK, loginMsg{Sub: sub, Scope: scopes, Token: token, ExpiresIn: maxAge, Exp: exp.Unix()})
	})
}

// handleLogout clears the cookie.
func (s *Server) handleLogout() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, s.cookie(r, "", -1))
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	})
}

// cookie is the token cookie: HttpOnly, so that a script injected into a
// page cannot read it; SameSite=Lax, so that other sites' subrequests do
// not carry it (a WebSocket from a page on another port of the same host
// is same-site and does carry it: the Origin check is still the defence);
// Secure when the client spoke TLS, to us or to a trusted proxy (clientip.go).
func (s *Server) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     s.cfg.CookieName,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   s.requestIsTLS(r),
		SameSite: http.SameSiteLaxMode,
	}
}
