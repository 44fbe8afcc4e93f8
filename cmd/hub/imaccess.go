package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/imapi"
	"github.com/imhub/imhub/hub/membership"
)

// IMConfig is IM-native access (docs/protocol.md#credentials): the IM's
// secret key of each app that uses it, which verifies its users' UserSigs
// and signs the admin's to ask the IM's REST API who is in a group.
type IMConfig struct {
	// Spec is -im-keys as given: SdkAppid:SDKSecretKey,…
	Spec string
	// Keys is Spec parsed: SdkAppid to secret key.
	Keys map[string][]byte
	// Admin is the app administrator account the REST API is called as.
	Admin string
	// APIURL is the IM's REST API base; APIRate the calls a second each
	// app may make from this node; APITimeout bounds each call.
	APIURL     string
	APIRate    float64
	APITimeout time.Duration
	// MembershipTTL is how long the IM's "a member" is kept.
	MembershipTTL time.Duration
	// StandIn (-dev-im) has a -dev hub serve a stand-in of the REST API
	// itself, for the first app, with a demo key (devim.go).
	StandIn bool
}

// String hides the keys from anything that prints a Config.
func (c IMConfig) String() string {
	apps := make([]string, 0, len(c.Keys))
	for a := range c.Keys {
		apps = append(apps, a)
	}
	sort.Strings(apps)
	return fmt.Sprintf("{IM keys of apps %v, admin %s, API %s at %g/s within %v, members kept %v}", apps, c.Admin, c.APIURL, c.APIRate, c.APITimeout, c.MembershipTTL)
}

// defaultIMAPIURL is the REST API of the IM's Singapore data centre, where
// an app made on the international site lives unless another region was
// chosen; the RESTful API overview lists each region's domain
// (https://www.tencentcloud.com/document/product/1047/34620).
const defaultIMAPIURL = "https://adminapisgp.im.qcloud.com"

func imFlags(fs *flag.FlagSet, c *IMConfig) {
	fs.StringVar(&c.Spec, "im-keys", "", "the IM's secret key of each app whose clients log in with their UserSig and whose groups follow the IM's membership, comma-separated: `SdkAppid:SDKSecretKey`,… "+
		"(the IM console's key: it signs as any user, the admin included; give it from a secret, never on a command line); empty = JWTs only")
	fs.StringVar(&c.Admin, "im-admin", "administrator", "the app administrator `account` the hub calls the IM's REST API as (-im-keys)")
	fs.StringVar(&c.APIURL, "im-api-url", defaultIMAPIURL, "the IM's REST API `URL` for -im-keys apps: your app's region's domain, as the IM's RESTful API overview lists them "+
		"(https://www.tencentcloud.com/document/product/1047/34620), such as https://console.tim.qq.com for the Chinese mainland; https, or http on a loopback host or with -dev")
	fs.Float64Var(&c.APIRate, "im-api-rate", 80, "IM REST API calls a second each -im-keys app may make from this node, below the IM's own limit; "+
		"N nodes may make N times as many, so give each its share (README)")
	fs.DurationVar(&c.APITimeout, "im-api-timeout", 2*time.Second, "deadline of each IM REST API call")
	fs.BoolVar(&c.StandIn, "dev-im", false, "with -dev: serve a stand-in of the IM's REST API on loopback, kept current by the callbacks this hub takes (in Redis with -redis, shared by every -dev-im hub on it), "+
		"and take UserSigs of the first app signed with a demo key, printed, that /dev/usersig mints; instead of -im-keys and -im-api-url")
	fs.DurationVar(&c.MembershipTTL, "im-membership-ttl", 10*time.Minute, "how long the IM's answer that a user is a member of a group is kept, shared by every node; "+
		"the callbacks keep it current, so this bounds only how long an exit the hub was never told of keeps a user in")
}

// imKeyList reads -im-keys.
var imKeyList = secretList{flag: "-im-keys", shape: "SdkAppid:SDKSecretKey", check: func(app, key string) string {
	if key == "" {
		return fmt.Sprintf("app %s has an empty key after ':'", app)
	}
	return ""
}}

// validateIM parses -im-keys against the configured apps and checks the
// IM API settings. No error repeats a key, nor what may be one.

func (c *Config) validateIM() error {
	m := &c.IM
	if m.StandIn {
		switch {
		case !c.Dev:
			return errors.New("-dev-im needs -dev: its /dev/usersig mints UserSigs for anyone who asks")
		case strings.TrimSpace(m.Spec) != "":
			// /dev/usersig would sign with it: a UserSig the IM itself takes.
			return errors.New("-dev-im signs with a demo key of its own: drop -im-keys, whose keys /dev/usersig would otherwise sign real UserSigs with")
		case m.APIURL != defaultIMAPIURL:
			return errors.New("-dev-im serves the IM's REST API itself: drop -im-api-url")
		}
	}
	list, err := imKeyList.parse(m.Spec, c.Apps)
	if err != nil {
		return err
	}
	m.Keys = nil
	for _, item := range list {
		if m.Keys[item.app] != nil {
			return fmt.Errorf("-im-keys: app %s is listed twice", item.app)
		}
		if m.Keys == nil {
			m.Keys = map[string][]byte{}
		}
		m.Keys[item.app] = []byte(item.secret)
	}
	if m.Admin == "" {
		return errors.New("-im-admin must name the app's administrator account, such as administrator")
	}
	u, err := url.Parse(m.APIURL)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return fmt.Errorf("-im-api-url %s: want https://host, such as %s", showFlag("im-api-url", m.APIURL), defaultIMAPIURL)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return errors.New("-im-api-url takes no user, query or fragment: the hub adds the IM's own query")
	case u.Scheme == "http" && !c.Dev && !loopbackHost(u.Host):
		return fmt.Errorf("-im-api-url %s: http is allowed on a loopback host, or with -dev, only: the calls carry the admin's UserSig", showFlag("im-api-url", m.APIURL))
	}
	switch {
	case !(m.APIRate > 0) || math.IsInf(m.APIRate, 0):
		return errors.New("-im-api-rate must be a number of calls a second above zero, such as 80")
	case m.APITimeout <= 0:
		return errors.New("-im-api-timeout must be greater than zero, such as 2s")
	case m.MembershipTTL <= 0:
		return errors.New("-im-membership-ttl must be greater than zero, such as 10m")
	}
	return nil
}

// imAccess is the parts of IM-native access a hub runs with: the
// verifier of its apps' UserSigs, and the view of the IM's membership, on
// the broker's Redis when there is one. Without -im-keys it has none.
type imAccess struct {
	userSigs *auth.UserSigVerifier
	view     *membership.View
	checker  *membership.Checker
	client   redis.UniversalClient
	// told is what the callbacks tell of each change: the view, and in
	// -dev-im mode first the stand-in, as the IM changes before it calls.
	told callback.Membership
}

// newIMAccess builds the parts from cfg.IM.
func newIMAccess(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*imAccess, error) {
	a := &imAccess{}
	if len(cfg.IM.Keys) == 0 {
		return a, nil
	}
	im, err := imapi.New(imapi.Config{
		BaseURL: cfg.IM.APIURL,
		Admin:   cfg.IM.Admin,
		Keys:    cfg.IM.Keys,
		Rate:    cfg.IM.APIRate,
		Burst:   max(1, min(20, int(cfg.IM.APIRate))),
		Timeout: cfg.IM.APITimeout,
		Metrics: imapi.NewMetrics(reg),
	})
	if err != nil {
		return nil, fmt.Errorf("-im-api-url: %w", err)
	}
	if cfg.Redis != "" {
		if a.client, err = broker.NewRedisClient(cfg.Redis, cfg.RedisCA); err != nil {
			return nil, err
		}
	}
	a.checker, err = membership.NewChecker(membership.Config{
		IM:        im,
		Redis:     a.client,
		MemberTTL: cfg.IM.MembershipTTL,
		// An ask waits for the IM's answer, and a node for another's.
		AskTimeout: cfg.IM.APITimeout + time.Second,
		Registerer: reg,
		Logger:     log,
	})
	if err != nil {
		a.close()
		return nil, err
	}
	apps := make([]string, 0, len(cfg.IM.Keys))
	for app := range cfg.IM.Keys {
		apps = append(apps, app)
	}
	a.userSigs = auth.NewUserSigVerifier(cfg.IM.Keys)
	a.view = membership.NewView(a.checker, apps...)
	a.told = a.view
	return a, nil
}

// tellFirst has the callbacks tell m of each change before the view.
func (a *imAccess) tellFirst(m callback.Membership) {
	if a.view != nil {
		a.told = tellBoth{m, a.view}
	}
}

// tellBoth tells first, then then, of each change, both of them whatever
// the first answered.
type tellBoth struct{ first, then callback.Membership }

func (t tellBoth) Created(ctx context.Context, app, group, groupType, owner string, users ...string) error {
	return errors.Join(t.first.Created(ctx, app, group, groupType, owner, users...), t.then.Created(ctx, app, group, groupType, owner, users...))
}

func (t tellBoth) Joined(ctx context.Context, app, group string, users ...string) error {
	return errors.Join(t.first.Joined(ctx, app, group, users...), t.then.Joined(ctx, app, group, users...))
}

func (t tellBoth) Left(ctx context.Context, app, group string, users ...string) error {
	return errors.Join(t.first.Left(ctx, app, group, users...), t.then.Left(ctx, app, group, users...))
}

func (t tellBoth) Destroyed(ctx context.Context, app, group string) error {
	return errors.Join(t.first.Destroyed(ctx, app, group), t.then.Destroyed(ctx, app, group))
}

// membership is the hub's Membership, nil without -im-keys.
func (a *imAccess) membership() hub.Membership {
	if a.view == nil {
		return nil
	}
	return a.view
}

// learning is what callbacks are published to: next, behind a
// callback.Learning that tells the membership of each change first.
func (a *imAccess) learning(next callback.LearningNext, log *slog.Logger) callback.LearningNext {
	if a.view == nil {
		return next
	}
	return &callback.Learning{Next: next, Membership: a.told, Logger: log}
}

// close ends the asks under way and closes the Redis client.
func (a *imAccess) close() {
	if a.checker != nil {
		_ = a.checker.Close()
	}
	if a.client != nil {
		_ = a.client.Close()
	}
}
