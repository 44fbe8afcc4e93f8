package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The commands are the JSON protocol's: an id and one request.
func TestCentrifugoCommands(t *testing.T) {
	var c struct {
		ID      uint32 `json:"id"`
		Connect struct {
			Token string `json:"token"`
			Name  string `json:"name"`
		} `json:"connect"`
		Subscribe struct {
			Channel string `json:"channel"`
		} `json:"subscribe"`
	}
	require.NoError(t, json.Unmarshal(cfConnectCmd(1, "tok"), &c))
	assert.Equal(t, uint32(1), c.ID)
	assert.Equal(t, "tok", c.Connect.Token)
	assert.Empty(t, c.Subscribe.Channel)

	c.Connect.Token = ""
	require.NoError(t, json.Unmarshal(cfSubscribeCmd(2, "group:G3"), &c))
	assert.Equal(t, uint32(2), c.ID)
	assert.Equal(t, "group:G3", c.Subscribe.Channel)
	assert.Empty(t, c.Connect.Token)
}

func TestCentrifugoToken(t *testing.T) {
	tok := centrifugoToken("s3cret", "u7")
	var claims jwt.RegisteredClaims
	parsed, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return []byte("s3cret"), nil },
		jwt.WithValidMethods([]string{"HS256"}))
	require.NoError(t, err)
	assert.True(t, parsed.Valid)
	assert.Equal(t, "u7", claims.Subject)
	assert.True(t, claims.ExpiresAt.After(time.Now().Add(time.Hour)))
	_, err = jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte("other"), nil })
	assert.Error(t, err, "signed with the secret, not another")
}

// A message may hold several replies, one a line; only publication
// pushes are deliveries.
func TestCentrifugoPushes(t *testing.T) {
	type pub struct {
		sent, off int64
		user      bool
	}
	tests := []struct {
		name  string
		msg   string
		pubs  []pub
		pings int
	}{
		{"one publication", `{"push":{"channel":"group:G1","pub":{"data":{"body":[{"MsgContent":{"Text":"t=123 xx"}}]},"offset":7,"epoch":"ab"}}}`,
			[]pub{{123, 7, false}}, 0},
		{"two in one message", `{"push":{"channel":"group:G1","pub":{"data":{"Text":"t=5 x"},"offset":1}}}` + "\n" +
			`{"push":{"channel":"user:#u1","pub":{"data":{"Text":"t=6 x"},"offset":2}}}`,
			[]pub{{5, 1, false}, {6, 2, true}}, 0},
		{"a ping", `{}`, nil, 1},
		{"a ping among publications", `{"push":{"channel":"group:G1","pub":{"data":{"Text":"t=5 x"},"offset":3}}}` + "\n{}\n",
			[]pub{{5, 3, false}}, 1},
		{"a reply", `{"id":2,"subscribe":{"recoverable":true,"epoch":"ab","offset":9}}`, nil, 0},
		{"a join push", `{"push":{"channel":"group:G1","join":{"info":{"user":"u1"}}}}`, nil, 0},
		{"a publication of other data", `{"push":{"channel":"group:G1","pub":{"data":{"n":1},"offset":3}}}`, nil, 0},
		{"no offset", `{"push":{"channel":"group:G1","pub":{"data":{"Text":"t=8 x"}}}}`, []pub{{8, 0, false}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []pub
			pings := 0
			cfLines([]byte(tt.msg), func(line []byte) {
				if cfIsPing(line) {
					pings++
					return
				}
				if s, o, u, ok := cfPub(line); ok {
					got = append(got, pub{s, o, u})
				}
			})
			assert.Equal(t, tt.pubs, got)
			assert.Equal(t, tt.pings, pings)
		})
	}
}

func TestCentrifugoPublishAnswer(t *testing.T) {
	tests := []struct {
		body    string
		wantErr string
	}{
		{`{"result":{"offset":3,"epoch":"ab"}}`, ""},
		{`{"result":{}}`, ""},
		{`{"error":{"code":102,"message":"unknown channel"}}`, "102 unknown channel"},
		{`{}`, "without a result"},
		{`not json`, "publish answer"},
	}
	for _, tt := range tests {
		err := cfPublishOK([]byte(tt.body))
		if tt.wantErr == "" {
			assert.NoError(t, err, tt.body)
		} else {
			assert.ErrorContains(t, err, tt.wantErr, tt.body)
		}
	}
}

// The publication carries the event the hub would deliver for the same
// callback, with the send time where the clients look for it.
func TestCentrifugoPublishBody(t *testing.T) {
	now := time.UnixMilli(1700000000123)
	var req struct {
		Channel string `json:"channel"`
		Data    struct {
			Type    string `json:"type"`
			GroupID string `json:"group_id"`
			Time    int64  `json:"time"`
			Body    []struct {
				MsgContent struct{ Text string }
			} `json:"body"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(cfPublishBody("group:G2", "G2", 42, "t=99 xx", now), &req))
	assert.Equal(t, "group:G2", req.Channel)
	assert.Equal(t, "group.message.sent", req.Data.Type)
	assert.Equal(t, "G2", req.Data.GroupID)
	assert.Equal(t, int64(1700000000123), req.Data.Time)
	require.Len(t, req.Data.Body, 1)
	assert.Equal(t, "t=99 xx", req.Data.Body[0].MsgContent.Text)

	require.NoError(t, json.Unmarshal(cfPublishBody("user:#u1", "", 43, "t=1", now), &req))
	assert.Equal(t, "c2c.message.sent", req.Data.Type)
	assert.Equal(t, "user:#u1", cfChannel("user:u1"))
	assert.Equal(t, "group:G1", cfChannel("group:G1"))
}

// Centrifugo gets the hub's guarantees: Redis, history of 100 for 10
// minutes with recovery forced, HS256 tokens, the API key.
func TestCentrifugoConfig(t *testing.T) {
	b, err := centrifugoConfig("127.0.0.1:8123", "/tmp/r.sock", "s3cret")
	require.NoError(t, err)
	var c struct {
		HTTPServer struct {
			Address string `json:"address"`
			Port    int    `json:"port"`
		} `json:"http_server"`
		Engine struct {
			Type  string `json:"type"`
			Redis struct {
				Address []string `json:"address"`
			} `json:"redis"`
		} `json:"engine"`
		Client struct {
			Token struct {
				HMAC string `json:"hmac_secret_key"`
			} `json:"token"`
			Personal struct {
				Enabled   bool   `json:"enabled"`
				Namespace string `json:"personal_channel_namespace"`
			} `json:"subscribe_to_user_personal_channel"`
		} `json:"client"`
		Channel struct {
			Namespaces []struct {
				Name          string `json:"name"`
				HistorySize   int    `json:"history_size"`
				HistoryTTL    string `json:"history_ttl"`
				ForceRecovery bool   `json:"force_recovery"`
				Subscribe     bool   `json:"allow_subscribe_for_client"`
			} `json:"namespaces"`
		} `json:"channel"`
		HTTPAPI struct {
			Key string `json:"key"`
		} `json:"http_api"`
	}
	require.NoError(t, json.Unmarshal(b, &c))
	assert.Equal(t, "127.0.0.1", c.HTTPServer.Address)
	assert.Equal(t, 8123, c.HTTPServer.Port)
	assert.Equal(t, "redis", c.Engine.Type)
	assert.Equal(t, []string{"unix:///tmp/r.sock"}, c.Engine.Redis.Address)
	assert.Equal(t, "s3cret", c.Client.Token.HMAC)
	assert.True(t, c.Client.Personal.Enabled)
	assert.Equal(t, "user", c.Client.Personal.Namespace)
	assert.Equal(t, centrifugoAPIKey, c.HTTPAPI.Key)
	require.Len(t, c.Channel.Namespaces, 2)
	for _, ns := range c.Channel.Namespaces {
		assert.Equal(t, 100, ns.HistorySize, ns.Name)
		assert.Equal(t, "10m", ns.HistoryTTL, ns.Name)
		assert.True(t, ns.ForceRecovery, ns.Name)
		assert.True(t, ns.Subscribe, ns.Name)
	}
	_, err = centrifugoConfig("no-port", "/tmp/r.sock", "s")
	assert.Error(t, err)
}
