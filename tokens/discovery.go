package tokens

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Metadata is what this server reads of an issuer's discovery document
// (OpenID Connect Discovery 1.0 §3, RFC 8414 §2).
type Metadata struct {
	Issuer                string // "issuer": equal to the issuer asked about
	JWKSURI               string // "jwks_uri": the issuer's keys
	IntrospectionEndpoint string // "introspection_endpoint"; empty if the issuer has none
	URL                   string // where the document was found
}

// DefaultMaxMetadataBytes bounds a discovery document.
const DefaultMaxMetadataBytes = 256 << 10

// Discover fetches the discovery document of issuer: first OpenID Connect's
// issuer + "/.well-known/openid-configuration", then, if there is none
// there, RFC 8414's, where "/.well-known/oauth-authorization-server" goes
// between the host and the issuer's path (RFC 8414 §3.1). The document's
// "issuer" must equal issuer exactly (RFC 8414 §3.3; OpenID Connect
// Discovery §4.3): a document that names another issuer could make this
// server trust another issuer's keys. A nil client means a shared one that
// follows no redirect. Each of the two requests has DefaultTimeout, or
// less if ctx ends sooner. Errors name the URLs tried and what was wrong.
func Discover(ctx context.Context, client *http.Client, issuer string) (Metadata, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return Metadata{}, fmt.Errorf("issuer %q is not an http or https URL without query, fragment or credentials", issuer)
	}
	client = cmp.Or(client, defaultClient)
	path := strings.TrimSuffix(u.Path, "/")
	oidc := *u
	oidc.Path = path + "/.well-known/openid-configuration"
	oidc.RawPath = ""
	oauth := *u
	oauth.Path = "/.well-known/oauth-authorization-server" + path
	oauth.RawPath = ""

	var tried []string
	for _, where := range []string{oidc.String(), oauth.String()} {
		actx, cancel := context.WithTimeout(ctx, DefaultTimeout)
		body, _, err := getJSON(actx, client, where, DefaultMaxMetadataBytes)
		cancel()
		if err != nil {
			tried = append(tried, err.Error())
			if errors.Is(err, errNotFound) {
				continue // no document there; try the other place
			}
			break
		}
		md, err := parseMetadata(body, issuer)
		if err != nil {
			return Metadata{}, fmt.Errorf("discovery: %s: %w", where, err)
		}
		md.URL = where
		return md, nil
	}
	return Metadata{}, fmt.Errorf("discovery of issuer %s: %s", issuer, strings.Join(tried, "; "))
}

// parseMetadata reads a discovery document for issuer.
func parseMetadata(body []byte, issuer string) (Metadata, error) {
	m, err := parseObject(body)
	if err != nil {
		return Metadata{}, fmt.Errorf("the document is not usable: %w", err)
	}
	var md Metadata
	for name, dst := range map[string]*string{
		"issuer": &md.Issuer, "jwks_uri": &md.JWKSURI, "introspection_endpoint": &md.IntrospectionEndpoint,
	} {
		var ok bool
		if *dst, ok = optString(m, name); !ok {
			return Metadata{}, fmt.Errorf("its %q is not a string", name)
		}
	}
	if md.Issuer != issuer {
		return Metadata{}, fmt.Errorf("the document names the issuer %q, not %q: the two must be equal, trailing slash included", md.Issuer, issuer)
	}
	if md.JWKSURI == "" && md.IntrospectionEndpoint == "" {
		return Metadata{}, errors.New(`the document has neither "jwks_uri" nor "introspection_endpoint"`)
	}
	for name, v := range map[string]string{"jwks_uri": md.JWKSURI, "introspection_endpoint": md.IntrospectionEndpoint} {
		if u, err := url.Parse(v); v != "" && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "") {
			return Metadata{}, fmt.Errorf("its %q is not an http or https URL", name)
		}
	}
	return md, nil
}
