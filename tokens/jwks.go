package tokens

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// How often the key set is fetched. A set is fetched again when its
// Cache-Control max-age has passed, bounded to [MinJWKSRefresh,
// MaxJWKSRefresh] (DefaultJWKSRefresh without one), and when a token names
// a key the set lacks; but never twice within JWKSRefetchInterval, so a
// flood of tokens with made-up key ids costs one fetch per interval.
const (
	DefaultJWKSRefresh  = 15 * time.Minute
	MinJWKSRefresh      = time.Minute
	MaxJWKSRefresh      = time.Hour
	JWKSRefetchInterval = 10 * time.Second
)

// keySet is the cached JWK set of one URL. Lookups never wait for the
// network unless a token names a key the set lacks; a set past its
// refresh time is fetched again in the background while its keys go on
// verifying. While the URL cannot be fetched, the keys last fetched keep
// working.
type keySet struct {
	url      string
	client   *http.Client
	timeout  time.Duration
	maxBytes int64
	maxKeys  int
	allowed  []string
	now      func() time.Time

	mu        sync.Mutex
	keys      map[string]jwk
	refreshAt time.Time     // when the set should be fetched again
	lastTry   time.Time     // when the last fetch started
	lastErr   error         // how the last finished fetch failed; nil if it did not
	fetching  chan struct{} // closed when the fetch in flight ends; nil if none
}

// errors of key lookups, allocated once.
var (
	errUnknownKey = fmt.Errorf("%w: no key in the JWK set has the token's kid", ErrInvalid)
	errKeysDown   = fmt.Errorf("%w: the token's kid is not in the JWK set, which cannot be fetched now", ErrUnavailable)
)

// key returns the key named kid. An unknown kid starts a fetch, unless one
// started within JWKSRefetchInterval, and waits for it: it is ErrInvalid if
// the set, fetched, lacks the key, and ErrUnavailable if the set could not
// be fetched.
func (s *keySet) key(ctx context.Context, kid string) (jwk, error) {
	s.mu.Lock()
	k, known := s.keys[kid]
	if known {
		if !s.now().Before(s.refreshAt) {
			s.startFetch() // in the background; this key verifies meanwhile
		}
		s.mu.Unlock()
		return k, nil
	}
	done := s.startFetch()
	if done == nil { // fetched too recently to fetch again
		down := s.lastErr != nil
		s.mu.Unlock()
		if down {
			return jwk{}, errKeysDown
		}
		return jwk{}, errUnknownKey
	}
	s.mu.Unlock()

	select {
	case <-done:
	case <-ctx.Done():
		return jwk{}, fmt.Errorf("%w: waiting for the JWK set: %w", ErrUnavailable, ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, known := s.keys[kid]; known {
		return k, nil
	}
	if s.lastErr != nil {
		return jwk{}, errKeysDown
	}
	return jwk{}, errUnknownKey
}

// fetch fetches the set now, whenever it was last fetched, or waits for the
// fetch in flight, and returns how it failed.
func (s *keySet) fetch(ctx context.Context) error {
	s.mu.Lock()
	if s.fetching == nil {
		s.lastTry = time.Time{} // fetch now, whatever the interval
	}
	done := s.startFetch()
	s.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the JWK set: %w", ErrUnavailable, ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// startFetch starts a fetch in the background, unless one is in flight (it
// returns that one's channel) or one started within JWKSRefetchInterval (it
// returns nil). s.mu must be held.
func (s *keySet) startFetch() <-chan struct{} {
	if s.fetching != nil {
		return s.fetching
	}
	now := s.now()
	if !s.lastTry.IsZero() && now.Sub(s.lastTry) < JWKSRefetchInterval {
		return nil
	}
	s.lastTry = now
	done := make(chan struct{})
	s.fetching = done
	go func() {
		// Detached from any caller: others may be waiting on this fetch.
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		keys, maxAge, err := s.get(ctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.lastErr = err
		if err == nil {
			s.keys = keys
			s.refreshAt = s.now().Add(maxAge)
		}
		s.fetching = nil
		close(done)
	}()
	return done
}

// get fetches and parses the set. Errors name the URL, never a token.
func (s *keySet) get(ctx context.Context) (map[string]jwk, time.Duration, error) {
	body, header, err := getJSON(ctx, s.client, s.url, s.maxBytes)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	keys, err := parseJWKSet(body, s.allowed, s.maxKeys)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s: %w", ErrUnavailable, redact(s.url), err)
	}
	usable := 0
	var reason error
	for _, k := range keys {
		if k.err == nil {
			usable++
		} else if reason == nil {
			reason = k.err
		}
	}
	if usable == 0 {
		// More likely a broken endpoint than the revocation of every key:
		// the keys fetched before stay.
		if reason == nil {
			reason = errors.New("the set is empty")
		}
		return nil, 0, fmt.Errorf("%w: %s: no key this server can use: %w", ErrUnavailable, redact(s.url), reason)
	}
	return keys, refreshAfter(header.Get("Cache-Control")), nil
}

// refreshAfter reads how long a response may be reused from its
// Cache-Control header (RFC 9111 §5.2.2.1 max-age; no-cache and no-store
// mean as soon as allowed), bounded to [MinJWKSRefresh, MaxJWKSRefresh].
func refreshAfter(cacheControl string) time.Duration {
	d := DefaultJWKSRefresh
	for directive := range strings.SplitSeq(cacheControl, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		switch strings.ToLower(name) {
		case "no-cache", "no-store":
			return MinJWKSRefresh
		case "max-age":
			// RFC 9111 §1.2.2: a value too large to represent is very large.
			sec, err := strconv.ParseUint(strings.Trim(value, `"`), 10, 63)
			if errors.Is(err, strconv.ErrRange) {
				sec, err = uint64(MaxJWKSRefresh/time.Second), nil
			}
			if err == nil {
				d = time.Duration(min(sec, uint64(MaxJWKSRefresh/time.Second))) * time.Second
			}
		}
	}
	return min(max(d, MinJWKSRefresh), MaxJWKSRefresh)
}

// errNotFound marks a 404 from getJSON.
var errNotFound = errors.New("nothing there")

// getJSON GETs url and returns its body, read through a limit of maxBytes,
// and its header. Only a 200 with a body within the limit is an answer;
// errors name the URL and say what was wrong.
func getJSON(ctx context.Context, client *http.Client, url string, maxBytes int64) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", redact(url), err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", redact(url), unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		if resp.StatusCode == http.StatusNotFound {
			return nil, nil, fmt.Errorf("GET %s answered %s (%w)", redact(url), resp.Status, errNotFound)
		}
		if loc := resp.Header.Get("Location"); loc != "" {
			return nil, nil, fmt.Errorf("GET %s answered %s, a redirect to %s, which is not followed: give that URL", redact(url), resp.Status, redact(loc))
		}
		return nil, nil, fmt.Errorf("GET %s answered %s", redact(url), resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: reading the body: %w", redact(url), err)
	}
	if int64(len(body)) > maxBytes {
		return nil, nil, fmt.Errorf("GET %s: body larger than %d bytes", redact(url), maxBytes)
	}
	return body, resp.Header, nil
}

// redact returns rawURL with any password hidden, for error messages.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// unwrapURLError returns the cause inside an error of http.Client.Do, which
// otherwise repeats the method and URL the caller already names.
func unwrapURLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}
