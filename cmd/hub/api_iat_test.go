package main

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/wstest"
)

// A revocation is kept until every token issued before it has expired,
// which only iat bounds: with -api-keys, a token without iat is refused at
// connect (4001) and on refresh; without the server API it is let in.
func TestBinaryAPINeedsIssuedAt(t *testing.T) {
	noIat := func(t *testing.T) string {
		c := auth.Claims{App: "100"}
		c.Subject = "ann"
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
		tok, err := auth.Mint([]byte(clusterSecret), c)
		require.NoError(t, err)
		return tok
	}
	base := []string{"-apps", "100", "-jwt-secret", clusterSecret}
	p := hubtest.Start(t, append(base, "-api-keys", "100:"+apiKey))
	c := wstest.Dial(t, wsURL(p), noIat(t))
	c.ExpectClose(hub.CloseInvalidToken)

	conn := dialUser(t, p, mintAt(t, "ann", time.Now()))
	conn.Send(map[string]any{"op": "refresh", "token": noIat(t), "id": 1})
	f := conn.ReadOp("error")
	assert.Equal(t, hub.CodeForbidden, f.Code)
	assert.Contains(t, f.Message, "iat")

	plain := hubtest.Start(t, base)
	dialUser(t, plain, noIat(t))
}
