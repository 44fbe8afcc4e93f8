package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
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

// The built hub with -jwt-public-key admits tokens signed by the matching
// private key and nothing else.
func TestBinaryPublicKey(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "jwt.pem")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600))
	p := hubtest.Start(t, []string{"-apps", "1400000000", "-jwt-public-key", path})

	c := auth.Claims{}
	c.Subject = "jared"
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
	good, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(key)
	require.NoError(t, err)
	conn := wstest.Dial(t, "ws://"+p.Addr+"/ws", good)
	f := conn.ReadOp("connected")
	assert.Equal(t, "jared", f.User)

	hs, err := auth.Mint([]byte("a secret that is not the key at all"), c)
	require.NoError(t, err)
	wstest.Dial(t, "ws://"+p.Addr+"/ws", hs).ExpectClose(hub.CloseInvalidToken)
}
