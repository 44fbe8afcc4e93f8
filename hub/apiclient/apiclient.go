// Package apiclient is the Go client of imhub's server API (docs/protocol.md#server-api),
// for the app's own backend:
//
//	c := apiclient.New("https://hub.example.com", "1400000000", apiKey)
//	off, err := c.Publish(ctx, "user:jared", map[string]any{"text": "your order shipped"}, "order-1234")
//	if errors.Is(err, apiclient.ErrUnavailable) { /* retry with the same key */ }
//
// Every failure the hub answers is an *Error, which matches (errors.Is) the
// sentinel of its HTTP status.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sentinels of the answers the hub gives, one per HTTP status.
var (
	ErrBadRequest   = errors.New("bad request")             // 400
	ErrUnauthorized = errors.New("no valid API key")        // 401
	ErrForbidden    = errors.New("API key not for the app") // 403, for any app but the key's
	ErrNotFound     = errors.New("not found")               // 404: the API is off
	ErrTooLarge     = errors.New("request too large")       // 413
	// ErrRateLimited is 429: the app is over the hub's rate limit, and
	// nothing was done; the *Error's RetryAfter says when to try again.
	ErrRateLimited = errors.New("rate limited")
	// ErrUnavailable is 503, and 502 or 504 from a load balancer in front
	// of the hub: try again (a publish with the same idempotency key, as
	// it may have been done).
	ErrUnavailable = errors.New("hub unavailable")
)

var byStatus = map[int]error{
	http.StatusBadRequest:            ErrBadRequest,
	http.StatusUnauthorized:          ErrUnauthorized,
	http.StatusForbidden:             ErrForbidden,
	http.StatusNotFound:              ErrNotFound,
	http.StatusRequestEntityTooLarge: ErrTooLarge,
	http.StatusTooManyRequests:       ErrRateLimited,
	http.StatusServiceUnavailable:    ErrUnavailable,
	http.StatusBadGateway:            ErrUnavailable,
	http.StatusGatewayTimeout:        ErrUnavailable,
}

// Error is an answer of the hub other than success.
type Error struct {
	Status  int    // the HTTP status
	Message string // the hub's "error", what was wrong
	// RetryAfter is the answer's Retry-After (of a 429), zero without one.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("imhub api: %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Is matches the sentinel of e's status.
func (e *Error) Is(target error) bool { return byStatus[e.Status] == target }

// Client calls one hub's server API for one app. It is safe for
// concurrent use.
type Client struct {
	base string
	app  string
	key  string
	// HTTP is the client requests go through; its zero Timeout is
	// replaced by 10s in New.
	HTTP *http.Client
}

// New returns a client of the hub at base (such as http://127.0.0.1:8080)
// for app, with its API key.
func New(base, app, key string) *Client {
	return &Client{base: strings.TrimSuffix(base, "/"), app: app, key: key, HTTP: &http.Client{Timeout: 10 * time.Second}}
}

// Publish publishes data (anything encoding/json encodes, or a
// json.RawMessage) as a custom event on channel (user:<id> or
// group:<id>) and returns its offset. A non-empty idempotencyKey makes a
// retry within the hub's dedupe window answer the first offset instead of
// publishing again; duplicate says that happened.
func (c *Client) Publish(ctx context.Context, channel string, data any, idempotencyKey string) (offset string, duplicate bool, err error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return "", false, fmt.Errorf("imhub api: encode data: %w", err)
	}
	body := map[string]any{"app": c.app, "channel": channel, "data": json.RawMessage(raw)}
	if idempotencyKey != "" {
		body["idempotency_key"] = idempotencyKey
	}
	var out struct {
		Offset    string `json:"offset"`
		Duplicate bool   `json:"duplicate"`
	}
	err = c.do(ctx, http.MethodPost, "/api/publish", body, &out)
	return out.Offset, out.Duplicate, err
}

// Disconnect closes every session of user on every node (close code
// 4010) and returns how many there were.
func (c *Client) Disconnect(ctx context.Context, user string) (int, error) {
	var out struct {
		Sessions int `json:"sessions"`
	}
	err := c.do(ctx, http.MethodPost, "/api/disconnect", map[string]any{"app": c.app, "user": user}, &out)
	return out.Sessions, err
}

// Revoke refuses user's tokens issued before the given time, closes the
// sessions that hold one (4010), and returns how many it closed on every
// node.
func (c *Client) Revoke(ctx context.Context, user string, issuedBefore time.Time) (int, error) {
	var out struct {
		Sessions int `json:"sessions"`
	}
	err := c.do(ctx, http.MethodPost, "/api/revoke", map[string]any{"app": c.app, "user": user, "issued_before": issuedBefore.Unix()}, &out)
	return out.Sessions, err
}

// Presence returns, for each user connected to channel on any node, how
// many connections they have there.
func (c *Client) Presence(ctx context.Context, channel string) (map[string]int, error) {
	var out struct {
		Users map[string]int `json:"users"`
	}
	err := c.do(ctx, http.MethodGet, "/api/presence?"+url.Values{"app": {c.app}, "channel": {channel}}.Encode(), nil, &out)
	return out.Users, err
}

// Connections returns how many connections user has, on every node.
func (c *Client) Connections(ctx context.Context, user string) (int, error) {
	var out struct {
		Connections int `json:"connections"`
	}
	err := c.do(ctx, http.MethodGet, "/api/presence?"+url.Values{"app": {c.app}, "user": {user}}.Encode(), nil, &out)
	return out.Connections, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("imhub api: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("imhub api: %w", err)
	}
	req.Header.Set("Authorization", "apikey "+c.key)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		// Not answered: as good as unavailable, and safe to retry.
		return fmt.Errorf("%w: %s %s: %w", ErrUnavailable, method, strings.SplitN(path, "?", 2)[0], err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%w: read answer: %w", ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &Error{Status: resp.StatusCode, Message: e.Error, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("imhub api: answer is not the JSON expected: %w", err)
		}
	}
	return nil
}

// retryAfter reads a Retry-After of whole seconds, zero for none or an
// HTTP date (the hub sends seconds).
func retryAfter(v string) time.Duration {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 || n > int64(24*time.Hour/time.Second) {
		return 0
	}
	return time.Duration(n) * time.Second
}
