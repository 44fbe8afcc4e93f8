package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
)

// certFiles serves the certificate of -tls-cert and -tls-key, and loads
// them again when either file changes on disk: a renewed certificate is
// served from the next handshake on, without a restart.
type certFiles struct {
	certFile, keyFile string
	log               *slog.Logger

	mu       sync.Mutex
	cert     *tls.Certificate
	certStat fileStamp
	keyStat  fileStamp
	lastErr  string // the last failure logged, so that it is logged once
}

// fileStamp is what tells that a file changed: its identity as well as
// its time and size, since a renewal that replaces the file (an atomic
// rename, a Kubernetes secret volume's symlink swap) may keep both.
type fileStamp struct {
	info os.FileInfo
}

func (a fileStamp) same(b fileStamp) bool {
	return a.info != nil && b.info != nil && os.SameFile(a.info, b.info) &&
		a.info.ModTime().Equal(b.info.ModTime()) && a.info.Size() == b.info.Size()
}

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi}, nil
}

func newCertFiles(certFile, keyFile string, log *slog.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile, log: log}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

// load reads the pair if either file changed since it was last read.
func (c *certFiles) load() error {
	cs, err := stamp(c.certFile)
	if err != nil {
		return err
	}
	ks, err := stamp(c.keyFile)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert != nil && cs.same(c.certStat) && ks.same(c.keyStat) {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load -tls-cert %s and -tls-key %s: %w", c.certFile, c.keyFile, err)
	}
	if c.cert != nil {
		c.log.Info("TLS certificate reloaded", "cert", c.certFile)
	}
	c.cert, c.certStat, c.keyStat = &cert, cs, ks
	return nil
}

// getCertificate is the server's tls.Config.GetCertificate. Two stats per
// handshake are cheap beside the handshake. A pair that does not load (a
// renewal caught between writing the certificate and its key) leaves the
// certificate in use, and is tried again at the next handshake.
func (c *certFiles) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	err := c.load()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		c.lastErr = ""
	case err.Error() != c.lastErr:
		c.lastErr = err.Error()
		c.log.Warn("TLS certificate not reloaded; serving the one loaded before", "err", err)
	}
	return c.cert, nil
}
