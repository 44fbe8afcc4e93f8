package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
)

// writeCert writes a new self-signed certificate for 127.0.0.1, named
// name, and its key to dir/cert.pem and dir/key.pem.
func writeCert(t *testing.T, dir, name string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	return cert
}

// trusting is an HTTP client that trusts only cert.
func trusting(cert *x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
}

// With -tls-cert and -tls-key the hub serves HTTPS and WSS on -addr, and
// serves a renewed certificate, written over the files, without a restart;
// sessions opened before it live on.
func TestBinaryTLS(t *testing.T) {
	dir := t.TempDir()
	first := writeCert(t, dir, "first")
	p := hubtest.Start(t, []string{"-apps", "100", "-jwt-secret", clusterSecret,
		"-tls-cert", filepath.Join(dir, "cert.pem"), "-tls-key", filepath.Join(dir, "key.pem")})

	resp, err := trusting(first).Get("https://" + p.Addr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "HTTP/1.1", resp.Proto, "HTTP/1.1 only, the protocol WebSockets upgrade from")
	resp, err = (&http.Client{Timeout: 10 * time.Second}).Get(p.URL("/healthz"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 400, resp.StatusCode, "plain HTTP is not served on a TLS port")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+p.Addr+"/ws?token="+mint(t, "100", "jared", false),
		&websocket.DialOptions{HTTPClient: trusting(first)})
	require.NoError(t, err)
	defer ws.CloseNow()
	_, b, err := ws.Read(ctx)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"op":"connected"`)

	second := writeCert(t, dir, "second")
	require.Eventually(t, func() bool {
		resp, err := trusting(second).Get("https://" + p.Addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 10*time.Second, 50*time.Millisecond, "the renewed certificate is served")
	p.WaitLog(5*time.Second, "certificate reloaded", func(l map[string]any) bool { return l["msg"] == "TLS certificate reloaded" })

	_, _, _ = ws.Read(ctx) // the unasked subscribed frame of user:jared
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"op":"ping","id":1}`)))
	_, b, err = ws.Read(ctx)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"op":"pong"`, "the session opened with the first certificate lives on")
}

// A renewal that replaces the file keeps neither its identity, even when
// it keeps its time and size.
func TestFileStampSeesReplacement(t *testing.T) {
	dir := t.TempDir()
	path, next := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "cert.pem.new")
	require.NoError(t, os.WriteFile(path, []byte("aaaa"), 0o644))
	before, err := stamp(path)
	require.NoError(t, err)
	again, err := stamp(path)
	require.NoError(t, err)
	assert.True(t, before.same(again), "an unchanged file")

	require.NoError(t, os.WriteFile(next, []byte("bbbb"), 0o644))
	require.NoError(t, os.Chtimes(next, before.info.ModTime(), before.info.ModTime()))
	require.NoError(t, os.Rename(next, path))
	after, err := stamp(path)
	require.NoError(t, err)
	assert.Equal(t, before.info.ModTime(), after.info.ModTime())
	assert.False(t, before.same(after), "a file renamed into place with the same time and size")
}
