package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/imhub/imhub/hub/auth"
)

// UserSig is the IM login a client connects with instead of a JWT, for an
// app whose IM secret key the hub holds (docs/protocol.md#credentials): the
// connection is Authorization: UserSig <UserSig>, with SDKAppID and UserID
// in the URL's query.
type UserSig struct {
	// SDKAppID is the app and UserID the user the UserSig is of.
	SDKAppID, UserID string
	// Sig returns a UserSig of UserID for SDKAppID. It is called for each
	// connection, and ahead of the end of the one in use, whose fresh
	// successor is handed to the hub in band; it should give a fresh one
	// (signed later) once the one before nears its end.
	Sig func(ctx context.Context) (string, error)
}

// Deadlines of an in band refresh: getting the fresh credential and the
// hub's answer take at most refreshTimeout; one that fails is tried again
// refreshRetry later (Client.refreshRetry, for tests), until the hub closes the connection with 4002
// at the end of the one in use, and Run reconnects with a fresh one.
const (
	refreshTimeout = 10 * time.Second
	refreshRetry   = 10 * time.Second
)

// credential is what one connection is made, or refreshed, with.
type credential struct {
	authorization string     // the Authorization header
	query         url.Values // set in the URL's query
	// refresh holds the fields of the refresh frame that hands this
	// credential over in band; nil when it is not.
	refresh map[string]any
	// due is when a fresh credential should be handed over; zero: never.
	due time.Time
}

// validate checks that cfg names one credential, whole.
func (cfg *Config) validate() error {
	switch us := cfg.UserSig; {
	case len(cfg.URLs) == 0:
		return errors.New("client: URLs are required")
	case cfg.Token == nil && us == nil:
		return errors.New("client: Token or UserSig is required")
	case cfg.Token != nil && us != nil:
		return errors.New("client: Token and UserSig are exclusive: set one")
	case us != nil && (us.SDKAppID == "" || us.UserID == "" || us.Sig == nil):
		return errors.New("client: UserSig needs SDKAppID, UserID and Sig")
	}
	return nil
}

// credential gets the credential to connect or refresh with: from Token,
// or from UserSig, whose own TLS.time and TLS.expire say when it is due
// again.
func (c *Client) credential(ctx context.Context) (credential, error) {
	if c.cfg.Token != nil {
		tok, err := c.cfg.Token(ctx)
		if err != nil {
			return credential{}, fmt.Errorf("token: %w", err)
		}
		return credential{authorization: "Bearer " + tok}, nil
	}
	us := c.cfg.UserSig
	sig, err := us.Sig(ctx)
	if err != nil {
		return credential{}, fmt.Errorf("usersig: %w", err)
	}
	came := time.Now()
	cred := credential{
		authorization: "UserSig " + sig,
		query:         url.Values{"sdkappid": {us.SDKAppID}, "userid": {us.UserID}},
		refresh:       map[string]any{"usersig": sig},
	}
	u, err := auth.ReadUserSig(sig)
	if err != nil {
		// The hub judges it. Its end unknown, it is not refreshed in
		// band: the hub's 4002 at its end brings a fresh one.
		c.log.Warn("hub: the UserSig does not decode, so it is not refreshed before it ends", "err", err)
		return cred, nil
	}
	if u.User != us.UserID || u.App != us.SDKAppID {
		// The hub would refuse it with 4001; said here, the mistake is named.
		return credential{}, fmt.Errorf("%w: the UserSig is of user %q of app %s, not of user %q of app %s",
			ErrUnauthorized, u.User, u.App, us.UserID, us.SDKAppID)
	}
	// Its life by the signer's clock, counted from when it came: a clock
	// skewed against the signer's does not move the refresh.
	cred.due = came.Add(refreshAfter(u.Expires.Sub(u.Issued), c.cfg.RefreshAhead))
	return cred, nil
}

// refreshAfter is how long after a credential of life came a fresh one is
// due: ahead of its end by ahead, or by half a shorter life; at least a
// second.
func refreshAfter(life, ahead time.Duration) time.Duration {
	return max(time.Second, life-min(ahead, life/2))
}

// dialURL is raw with the credential's query set.
func (cred credential) dialURL(raw string) (string, error) {
	if len(cred.query) == 0 {
		return raw, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("client: URL: %w", err)
	}
	q := u.Query()
	for k, v := range cred.query {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// keepFresh hands the hub a fresh credential in band at each one's due
// time, from the first's, until ctx ends. answers carries the hub's
// answers to refresh frames (refreshed, or an error with a refresh id).
func (c *Client) keepFresh(ctx context.Context, conn *websocket.Conn, due time.Time, answers <-chan frame) {
	for n := 1; !due.IsZero(); n++ {
		t := time.NewTimer(time.Until(due))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		next, err := c.refresh(ctx, conn, n, answers)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.log.Warn("hub: refresh failed; trying again", "err", err, "in", c.refreshRetry)
			next = time.Now().Add(c.refreshRetry)
		}
		due = next
	}
}

// refreshID is the id of the n-th refresh frame of a connection: a string,
// so that it never meets a subscribe's number.
func refreshID(n int) string { return "refresh:" + strconv.Itoa(n) }

// isRefreshAnswer reports whether f answers a refresh frame.
func isRefreshAnswer(f frame) bool {
	var id string
	return (f.Op == "refreshed" || f.Op == "error") && json.Unmarshal(f.ID, &id) == nil && strings.HasPrefix(id, "refresh:")
}

// refresh gets a fresh credential, hands it over as refresh frame n and
// waits for the hub's answer; it returns when the next one is due.
func (c *Client) refresh(ctx context.Context, conn *websocket.Conn, n int, answers <-chan frame) (time.Time, error) {
	rctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	cred, err := c.credential(rctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("refresh: %w", err)
	}
	id := refreshID(n)
	f := map[string]any{"op": "refresh", "id": id}
	for k, v := range cred.refresh {
		f[k] = v
	}
	if err := write(rctx, conn, f); err != nil {
		return time.Time{}, fmt.Errorf("refresh: %w", err)
	}
	want := strconv.Quote(id)
	for {
		select {
		case <-rctx.Done():
			return time.Time{}, fmt.Errorf("refresh: no answer from the hub: %w", rctx.Err())
		case a := <-answers:
			if string(a.ID) != want {
				continue // the answer to a refresh given up on
			}
			if a.Op == "error" {
				return time.Time{}, fmt.Errorf("refresh refused: %s: %s", a.Code, a.Message)
			}
			return cred.due, nil
		}
	}
}
