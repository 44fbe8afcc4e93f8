// Package imapi calls the IM's REST API as an app's administrator: the
// hub asks it who is in a group, so that a client's access to a group
// follows the IM's own membership.
//
// Every call is made as documented in the IM's RESTful API overview
// (https://www.tencentcloud.com/document/product/1047/34620):
// POST <base>/v4/<service>/<command> with the query sdkappid, identifier
// (the app's admin account), usersig (one the client signs for that
// account with the app's secret key, and renews before it lapses), random
// (a fresh 32-bit number) and contenttype=json; a JSON body; an answer of
// HTTP 200 whose ActionStatus is "OK" or "FAIL" with an ErrorCode and an
// ErrorInfo.
//
// Start with [New] and [Client.RolesInGroup].
package imapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/textclip"
)

// Role is a user's role in a group, as the IM names it.
type Role string

// The roles get_role_in_group answers.
const (
	RoleOwner     Role = "Owner"
	RoleAdmin     Role = "Admin"
	RoleMember    Role = "Member"
	RoleNotMember Role = "NotMember"
)

// Member reports whether the role is one of a member of the group.
func (r Role) Member() bool { return r == RoleOwner || r == RoleAdmin || r == RoleMember }

// CodeNoRoles is the IM's answer to get_role_in_group for an audio-video
// group (AVChatRoom), whose members it does not keep
// (https://www.tencentcloud.com/document/product/1047/34963).
const CodeNoRoles = 10007

// The IM's answers for a group it does not have: 10010, the group does not
// exist or was disbanded, and 10015, no group has the id (the group codes
// as the IM's Web SDK names them,
// https://web.sdk.qcloud.com/im/download/error-message/v3/0.0.4/tim-error-message.txt).
// Nobody is a member of such a group.
const (
	CodeGroupGone   = 10010
	CodeNoSuchGroup = 10015
)

// MaxAccounts is the most accounts one get_role_in_group may ask about.
const MaxAccounts = 500

// maxAnswer bounds an answer read from the IM: 500 accounts' roles are
// about 30 KiB.
const maxAnswer = 256 << 10

// Error is the IM's FAIL answer.
type Error struct {
	Code int
	Info string
}

func (e *Error) Error() string {
	return fmt.Sprintf("IM error %d: %s", e.Code, textclip.Cut(e.Info, 200))
}

// RateLimited reports whether the IM refused the call for its rate: the
// REST API's public codes 60007 (the API's calls a second), 60011 (the
// app's), 60018 and 60019 (too frequent), as the public code table lists
// them (https://cloud.tencent.com/document/product/679/131708), and the
// group service's 10006 (operations too frequent), as the IM's Web SDK
// names it (https://web.sdk.qcloud.com/im/download/error-message/v3/0.0.4/tim-error-message.txt).
// The English code page (https://www.tencentcloud.com/document/product/1047/34348)
// was not checked for them.
func (e *Error) RateLimited() bool {
	switch e.Code {
	case 60007, 60011, 60018, 60019, 10006:
		return true
	}
	return false
}

// ErrRateSpent says the app's calls a second (Config.Rate) were spent
// until the call's deadline: it was not made.
var ErrRateSpent = errors.New("imapi: the app's IM API calls a second are spent")

// Config configures a Client.
type Config struct {
	// BaseURL is the IM's REST API, e.g. https://console.tim.qq.com (the
	// domain depends on the app's region).
	BaseURL string
	// Admin is the app administrator account the calls are made as;
	// default "administrator".
	Admin string
	// Keys are the apps' secret keys, SdkAppid to key.
	Keys map[string][]byte
	// Rate is the calls a second each app may make, and Burst how many at
	// once; default 80 and 20 (the IM allows 100 a second).
	Rate  float64
	Burst int
	// Timeout bounds each call; default 2s.
	Timeout time.Duration
	// SigTTL is how long the admin UserSigs the client signs live; it
	// signs a new one when less than a tenth is left. Default 24h.
	SigTTL time.Duration
	// HTTP makes the requests; default a client of its own.
	HTTP *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Metrics, when set, counts the calls (see NewMetrics).
	Metrics *Metrics
}

// Client calls the IM's REST API for the apps whose keys it holds. It is
// safe for concurrent use.
type Client struct {
	cfg  Config
	base *url.URL

	mu   sync.Mutex
	apps map[string]*appState
}

// appState is what the client keeps per app: its rate and its admin
// UserSig.
type appState struct {
	key    []byte
	limit  *rate.Limiter
	sig    string
	sigEnd time.Time
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("imapi: the IM API URL must be http(s)://host[/path], not %q", textclip.Cut(cfg.BaseURL, 64))
	}
	if base.User != nil || base.RawQuery != "" {
		return nil, errors.New("imapi: the IM API URL takes no user or query")
	}
	if cfg.Admin == "" {
		cfg.Admin = "administrator"
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 80
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.SigTTL <= 0 {
		cfg.SigTTL = 24 * time.Hour
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{cfg: cfg, base: base, apps: make(map[string]*appState, len(cfg.Keys))}
	for app, key := range cfg.Keys {
		c.apps[app] = &appState{key: bytes.Clone(key), limit: rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst)}
	}
	return c, nil
}

// adminSig returns a UserSig of the admin account for st's app, signing a
// new one when the last has less than a tenth of its life left.
func (c *Client) adminSig(app string, st *appState) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	if st.sig != "" && now.Before(st.sigEnd.Add(-c.cfg.SigTTL/10)) {
		return st.sig, nil
	}
	sig, err := auth.SignUserSig(st.key, app, c.cfg.Admin, now, c.cfg.SigTTL)
	if err != nil {
		return "", err
	}
	st.sig, st.sigEnd = sig, now.Add(c.cfg.SigTTL)
	return sig, nil
}

// call posts body to service/command for app and decodes the answer's
// extra fields into out. It waits for the app's rate within ctx and the
// call's own deadline.
func (c *Client) call(ctx context.Context, app, service, command string, body, out any) error {
	st, ok := c.apps[app]
	if !ok {
		return fmt.Errorf("imapi: no IM key for app %s", textclip.Cut(app, 32))
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if err := st.limit.Wait(ctx); err != nil {
		// Wait fails at once when the wait would outlast the deadline,
		// and also when the caller gave up: only the first is the rate.
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = ErrRateSpent
		} else {
			err = fmt.Errorf("imapi: %s: %w", command, context.Cause(ctx))
		}
		c.cfg.Metrics.count(app, command, err)
		return err
	}
	start := time.Now()
	err := c.post(ctx, app, st, service, command, body, out)
	c.cfg.Metrics.observe(app, command, time.Since(start))
	c.cfg.Metrics.count(app, command, err)
	return err
}

// post makes one call, its rate already taken.
func (c *Client) post(ctx context.Context, app string, st *appState, service, command string, body, out any) error {
	sig, err := c.adminSig(app, st)
	if err != nil {
		return fmt.Errorf("imapi: sign the admin UserSig: %w", err)
	}
	q := url.Values{
		"sdkappid":    {app},
		"identifier":  {c.cfg.Admin},
		"usersig":     {sig},
		"random":      {strconv.FormatUint(uint64(rand.Uint32()), 10)},
		"contenttype": {"json"},
	}
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v4/" + service + "/" + command
	u.RawQuery = q.Encode()
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("imapi: %s: %w", command, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("imapi: %s: %w", command, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		// The URL carries the admin UserSig: never let it into an error.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("imapi: %s: %w", command, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("imapi: %s: read the answer: %w", command, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("imapi: %s: HTTP %d", command, resp.StatusCode)
	}
	if len(raw) > maxAnswer {
		return fmt.Errorf("imapi: %s: the answer is over %d bytes", command, maxAnswer)
	}
	var head struct {
		ActionStatus string
		ErrorCode    *int
		ErrorInfo    string
	}
	if err := json.Unmarshal(raw, &head); err != nil || head.ErrorCode == nil {
		return fmt.Errorf("imapi: %s: the answer is not the IM's JSON", command)
	}
	if head.ActionStatus != "OK" || *head.ErrorCode != 0 {
		return &Error{Code: *head.ErrorCode, Info: head.ErrorInfo}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("imapi: %s: the answer's fields: %w", command, err)
	}
	return nil
}

// RolesInGroup asks the IM for the roles of users (at most MaxAccounts) in
// group (https://www.tencentcloud.com/document/product/1047/34963). A user
// the answer does not name is left out of the map: unknown, not a
// non-member. For an audio-video group the IM answers an *Error with
// Code CodeNoRoles.
func (c *Client) RolesInGroup(ctx context.Context, app, group string, users []string) (map[string]Role, error) {
	if len(users) == 0 || len(users) > MaxAccounts {
		return nil, fmt.Errorf("imapi: get_role_in_group takes 1 to %d accounts, not %d", MaxAccounts, len(users))
	}
	req := struct {
		GroupID  string   `json:"GroupId"`
		Accounts []string `json:"User_Account"`
	}{group, users}
	var ans struct {
		Roles []struct {
			Account string `json:"Member_Account"`
			Role    Role   `json:"Role"`
		} `json:"UserIdList"`
	}
	if err := c.call(ctx, app, "group_open_http_svc", "get_role_in_group", req, &ans); err != nil {
		return nil, err
	}
	asked := make(map[string]bool, len(users))
	for _, u := range users {
		asked[u] = true
	}
	roles := make(map[string]Role, len(ans.Roles))
	for _, e := range ans.Roles {
		switch e.Role {
		case RoleOwner, RoleAdmin, RoleMember, RoleNotMember:
		default:
			continue // a role the hub does not know grants nothing
		}
		if asked[e.Account] {
			roles[e.Account] = e.Role
		}
	}
	return roles, nil
}
