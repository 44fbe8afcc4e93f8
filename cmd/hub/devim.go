package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/imstub"
	"github.com/imhub/imhub/internal/textclip"
)

// devIM is the stand-in of the IM that a -dev -dev-im hub runs: the IM's
// REST API (internal/imstub) on a loopback listener of its own, which
// the hub's -im-api-url points at, kept current by the callbacks the hub
// takes, and the demo key its UserSigs are signed with. With -redis its
// groups are in Redis, so that every -dev-im hub of a local cluster
// answers alike whichever of them took a callback.
//
// It exists only with -dev, which needs a loopback -addr, and only for
// the demo key, which no real IM app has: a hub configured for
// production never serves it, and a UserSig /dev/usersig mints is good
// on -dev-im hubs only.
type devIM struct {
	app    string
	key    []byte
	admin  string
	stub   *imstub.Server
	ln     net.Listener
	http   *http.Server
	url    string
	client redis.UniversalClient // nil without -redis
}

// devIMKey is the demo IM key of the first app: derived from the demo
// token key, so that it is random unless -jwt-secret is given, and the
// same on every -dev-im hub that shares that secret (a UserSig from one
// is good on the others).
func devIMKey(devSecret []byte) []byte {
	m := hmac.New(sha256.New, devSecret)
	m.Write([]byte("imhub -dev-im key"))
	return []byte("devim" + hex.EncodeToString(m.Sum(nil))[:40])
}

// newDevIM listens for the stand-in on a free loopback port. Nothing is
// served until serve runs its server.
func newDevIM(cfg Config, devSecret []byte, log *slog.Logger) (*devIM, error) {
	d := &devIM{app: cfg.Apps[0].ID, key: devIMKey(devSecret), admin: cfg.IM.Admin}
	var store imstub.Store = imstub.NewMemoryStore()
	if cfg.Redis != "" {
		var err error
		if d.client, err = broker.NewRedisClient(cfg.Redis, cfg.RedisCA); err != nil {
			return nil, err
		}
		store = imstub.NewRedisStore(d.client, "imhub:dev-im")
	}
	d.stub = imstub.NewServer(imstub.Config{Keys: map[string][]byte{d.app: d.key}, Admin: d.admin, Store: store})
	var err error
	if d.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		d.close()
		return nil, fmt.Errorf("-dev-im: listen on loopback: %w", err)
	}
	d.url = "http://" + d.ln.Addr().String()
	d.http = &http.Server{
		Handler:           d.stub,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		// Room for a -dev/im delay of a minute, the longest taken.
		WriteTimeout: maxDevIMDelay + 10*time.Second,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return d, nil
}

// configure points cfg's IM access at the stand-in, with the demo key.
func (d *devIM) configure(cfg *Config) {
	cfg.IM.Keys = map[string][]byte{d.app: d.key}
	cfg.IM.APIURL = d.url
}

// close stops the stand-in at once: a call it holds (a hang) ends with it.
func (d *devIM) close() {
	if d.http != nil {
		_ = d.http.Close()
	}
	if d.ln != nil {
		_ = d.ln.Close()
	}
	if d.client != nil {
		_ = d.client.Close()
	}
}

// Created, Joined, Left and Destroyed tell the stand-in what a callback
// of its app changed, as the IM had changed it before calling: a
// callback.Membership. A group made by a callback has the type the
// callback gave it.
func (d *devIM) Created(ctx context.Context, app, group, groupType, owner string, users ...string) error {
	if app != d.app {
		return nil
	}
	return d.stub.Created(ctx, app, group, groupType, owner, users...)
}

// Joined is Created's.
func (d *devIM) Joined(ctx context.Context, app, group string, users ...string) error {
	if app != d.app {
		return nil
	}
	return d.stub.Joined(ctx, app, group, users...)
}

// Left is Joined's.
func (d *devIM) Left(ctx context.Context, app, group string, users ...string) error {
	if app != d.app {
		return nil
	}
	return d.stub.Left(ctx, app, group, users...)
}

// Destroyed is Joined's.
func (d *devIM) Destroyed(ctx context.Context, app, group string) error {
	if app != d.app {
		return nil
	}
	return d.stub.Destroyed(ctx, app, group)
}

// maxUserIDLen is the longest UserID the IM takes, in bytes
// (https://www.tencentcloud.com/document/product/1047/33517).
const maxUserIDLen = 32

// userSigHandler mints UserSigs of the demo key for anyone who asks, on a
// loopback Host only (as /dev/token, against DNS rebinding):
//
//	GET /dev/usersig?userid=jared&ttl=1h
//
// It answers the three values a page gives the IM's SDK (sdkappid,
// userid, usersig), when the UserSig ends (expires, unix seconds), the
// groups the stand-in says the user is in, and a ws URL that connects
// with them.
func (d *devIM) userSigHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			http.Error(w, "misdirected: /dev/usersig answers only requests addressed to localhost, 127.0.0.1 or [::1]", http.StatusForbidden)
			return
		}
		q := r.URL.Query()
		user := q.Get("userid")
		if user == "" || len(user) > maxUserIDLen {
			http.Error(w, "userid: want the IM UserID to sign for, 1 to 32 bytes, such as jared", http.StatusBadRequest)
			return
		}
		ttl := time.Hour
		if v := q.Get("ttl"); v != "" {
			t, err := time.ParseDuration(v)
			if err != nil || t < time.Second || t > 24*time.Hour {
				http.Error(w, "ttl: want a duration from 1s to 24h, such as 10m", http.StatusBadRequest)
				return
			}
			ttl = t
		}
		groups, err := d.stub.GroupsOf(r.Context(), d.app, user)
		if err != nil {
			http.Error(w, "the stand-in's groups cannot be read: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		now := time.Now()
		sig, err := auth.SignUserSig(d.key, d.app, user, now, ttl)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if groups == nil {
			groups = []string{}
		}
		q = map[string][]string{"sdkappid": {d.app}, "userid": {user}, "usersig": {sig}}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"sdkappid": d.app,
			"userid":   user,
			"usersig":  sig,
			"expires":  now.Add(ttl).Unix(),
			"groups":   groups,
			"ws":       "ws://" + r.Host + "/ws?" + q.Encode(),
		})
	})
}

// maxDevIMDelay is the longest delay /dev/im takes.
const maxDevIMDelay = time.Minute

// behaviour is what /dev/im answers and takes: the stand-in's fault,
// delay and rate.
type behaviour struct {
	Fault string  `json:"fault"`
	Delay string  `json:"delay"`
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
}

// controlHandler shows and changes how the stand-in answers:
//
//	GET  /dev/im
//	POST /dev/im  {"fault":"hang","delay":"2s","rate":5,"burst":5}
//
// A POST sets the fields it has (fault: none, error, html, http, garbage
// or hang; delay: 0 to 1m; rate: calls a second, 0 = any) and answers as
// GET does, with the stand-in's URL and admin. It is refused unless
// addressed to a loopback Host, with a JSON body, from no page or a page
// of a loopback origin: a page elsewhere cannot send the JSON without
// the preflight no other origin passes.
func (d *devIM) controlHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			http.Error(w, "misdirected: /dev/im answers only requests addressed to localhost, 127.0.0.1 or [::1]", http.StatusForbidden)
			return
		}
		switch r.Method {
		case http.MethodGet:
		case http.MethodPost:
			if o := r.Header.Get("Origin"); o != "" && !loopbackOrigin(o) {
				http.Error(w, "/dev/im takes changes from pages of a loopback origin only", http.StatusForbidden)
				return
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				http.Error(w, "/dev/im: want Content-Type: application/json", http.StatusUnsupportedMediaType)
				return
			}
			if err := d.change(r); err != nil {
				http.Error(w, "/dev/im: "+err.Error(), http.StatusBadRequest)
				return
			}
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "/dev/im: GET shows the stand-in's faults, delay and rate, POST changes them", http.StatusMethodNotAllowed)
			return
		}
		b := d.stub.Behaviour()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"url":   d.url,
			"admin": d.admin,
			"app":   d.app,
			"fault": b.Fault.String(),
			"delay": b.Delay.String(),
			"rate":  b.Rate,
			"burst": b.Burst,
		})
	})
}

// change applies a POST's body to the stand-in, all of it or none. Its
// keys must be the fields' names exactly: encoding/json alone would take
// "Fault" for fault.
func (d *devIM) change(r *http.Request) error {
	var body bytes.Buffer
	if _, err := body.ReadFrom(http.MaxBytesReader(nil, r.Body, 4<<10)); err != nil {
		return fmt.Errorf("read the body: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body.Bytes(), &fields); err != nil || fields == nil {
		return errors.New(`want a JSON object such as {"fault":"hang","delay":"2s","rate":5}`)
	}
	var want behaviour
	for k, v := range fields {
		var err error
		switch k {
		case "fault":
			err = json.Unmarshal(v, &want.Fault)
		case "delay":
			err = json.Unmarshal(v, &want.Delay)
		case "rate":
			err = json.Unmarshal(v, &want.Rate)
		case "burst":
			err = json.Unmarshal(v, &want.Burst)
		default:
			return fmt.Errorf("want fields fault, delay, rate and burst only, not %q", textclip.Cut(k, 40))
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	_, hasFault := fields["fault"]
	_, hasDelay := fields["delay"]
	_, hasRate := fields["rate"]
	_, hasBurst := fields["burst"]
	fault, delay := imstub.FaultNone, time.Duration(0)
	var err error
	if hasFault {
		if fault, err = imstub.ParseFault(want.Fault); err != nil {
			return err
		}
	}
	if hasDelay {
		if delay, err = time.ParseDuration(want.Delay); err != nil || delay < 0 || delay > maxDevIMDelay {
			return errors.New("delay: want a duration from 0s to 1m, such as 500ms")
		}
	}
	if hasRate && (want.Rate < 0 || want.Rate > 1e6) {
		return errors.New("rate: want calls a second from 0 (any) to 1000000")
	}
	if hasBurst && (!hasRate || want.Burst < 1) {
		return errors.New("burst: want a number of calls of at least 1, with a rate")
	}
	if hasFault {
		d.stub.SetFault(fault)
	}
	if hasDelay {
		d.stub.SetDelay(delay)
	}
	if hasRate {
		burst := want.Burst
		if burst == 0 {
			burst = max(1, int(want.Rate))
		}
		d.stub.SetRate(want.Rate, burst)
	}
	return nil
}

// bannerLines is what the -dev banner says of the stand-in: where to get
// a UserSig, the demo key, and where the stand-in is and is changed.
func (d *devIM) bannerLines(base string) string {
	return fmt.Sprintf(`  IM login    %[1]s/dev/usersig?userid=jared   (a UserSig of app %[2]s, signed with its demo IM key %[3]s)
  IM stand-in %[4]s   (-im-api-url, as -im-admin %[5]s; its faults, delay and rate: %[1]s/dev/im)
`, base, d.app, d.key, d.url, d.admin)
}
