package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/imhub/imhub/internal/redact"
)

// MaxJWKSSize is the largest JWKS body read. A real key set is a few KiB;
// the bound keeps a broken or hostile server from filling the hub's memory.
const MaxJWKSSize = 1 << 20

// CheckJWKSURL reports whether u may serve the keys tokens are checked
// with: https, or plain http on a loopback host. Over plain http anyone on
// the path could swap in keys of their own and sign any token; on loopback
// there is no path to be on, which is what tests and a key-serving sidecar
// on the same host use.
func CheckJWKSURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return errors.New("want an https URL")
	}
	switch p.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopbackHost(p.Hostname()) {
			return nil
		}
		return errors.New("http is allowed on a loopback host only, since anyone on the path could replace the keys: want https")
	default:
		return errors.New("want an https URL")
	}
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newJWKS(ctx context.Context, cfg Config) (jwt.Keyfunc, error) {
	// The URL may carry a password or a token in its query: errors and
	// logs show it as scheme://host/path.
	shown := redact.URL(cfg.JWKSURL)
	if err := CheckJWKSURL(cfg.JWKSURL); err != nil {
		return nil, fmt.Errorf("auth: jwks %s: %w", shown, err)
	}
	refresh, unknown, timeout := cfg.JWKSRefresh, cfg.JWKSRefreshUnknown, cfg.JWKSTimeout
	if refresh <= 0 {
		refresh = time.Hour
	}
	if unknown <= 0 {
		unknown = time.Minute
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	noErr := true // start even if the JWKS is down now; tokens fail until it is back
	k, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
		Client:                    jwksClient(cfg.HTTPClient, timeout),
		HTTPTimeout:               timeout,
		NoErrorReturnFirstHTTPReq: &noErr,
		RateLimitWaitMax:          time.Second,
		RefreshInterval:           refresh,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(unknown), 1),
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				cfg.Logger.WarnContext(ctx, "fetching JWKS failed", "url", redact.URL(u), "err", redact.Error(err, u))
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("auth: jwks %s: %w", shown, redact.Error(err, cfg.JWKSURL))
	}
	return k.Keyfunc, nil
}

// jwksClient returns a copy of c (or a new client) whose fetches take at
// most timeout, read at most MaxJWKSSize, and follow no redirect to a URL
// that CheckJWKSURL refuses.
func jwksClient(c *http.Client, timeout time.Duration) *http.Client {
	var cc http.Client
	if c != nil {
		cc = *c
	}
	base := cc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cc.Transport = limitTransport{base}
	if cc.Timeout <= 0 || cc.Timeout > timeout {
		cc.Timeout = timeout
	}
	check := cc.CheckRedirect
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := CheckJWKSURL(req.URL.String()); err != nil {
			return fmt.Errorf("redirect to %s: %w", redact.URL(req.URL.String()), err)
		}
		if check != nil {
			return check(req, via)
		}
		if len(via) >= 5 {
			return errors.New("more than 5 redirects")
		}
		return nil
	}
	return &cc
}

// limitTransport fails a response body read beyond MaxJWKSSize.
type limitTransport struct{ base http.RoundTripper }

func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{r: resp.Body, left: MaxJWKSSize}
	return resp, nil
}

// errJWKSTooLarge is what a read past MaxJWKSSize returns.
var errJWKSTooLarge = fmt.Errorf("JWKS body is larger than %d KiB", MaxJWKSSize>>10)

type limitedBody struct {
	r    io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		n, err := b.r.Read(one[:])
		if n > 0 {
			return 0, errJWKSTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.r.Close() }
