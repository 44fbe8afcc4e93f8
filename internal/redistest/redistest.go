// Package redistest runs a real redis-server for tests: on a temporary unix
// socket, with no persistence, stopped when the test ends. Tests that need
// Redis call [Start]; there is no fake.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server process that can be stopped and started again
// on the same socket, to test what happens while Redis is away.
type Server struct {
	t       testing.TB
	dir     string
	sock    string
	persist bool
	cmd     *exec.Cmd
	exit    chan struct{}
}

func init() {
	// Clients of a server that a test stops on purpose would log every
	// failed dial; the tests assert what matters instead.
	redis.SetLogger(quiet{})
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// Start starts redis-server and stops it when t ends. It fails the test,
// loudly, when redis-server is not installed: `make test` installs it.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartPersistent is Start with an append-only file synced on every write:
// after Stop and Restart the server has its data back, as a production
// Redis with persistence does after a crash.
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, persist bool) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed, so this test cannot run: use `make test`, which installs it, or `apt-get install -y redis-server` (%v)", err)
	}
	// A short path under the system temp dir: unix socket paths are
	// limited to about 100 bytes and t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "redis")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, dir: dir, sock: filepath.Join(dir, "redis.sock"), persist: persist}
	t.Cleanup(func() {
		s.Stop()
		os.RemoveAll(dir)
	})
	s.Restart()
	return s
}

// URL is the server's URL for redis.ParseURL and the hub's -redis flag.
func (s *Server) URL() string { return "unix://" + s.sock }

// Socket is the path of the server's unix socket.
func (s *Server) Socket() string { return s.sock }

// Restart starts the server again after Stop (or the first time), with an
// empty data set unless it persists, and waits until it answers PING.
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatal("redistest: Restart while running")
	}
	aof := []string{"--appendonly", "no"}
	if s.persist {
		aof = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	cmd := exec.Command("redis-server", append([]string{
		"--port", "0",
		"--unixsocket", s.sock,
		"--unixsocketperm", "700",
		"--dir", s.dir,
		"--save", "",
		"--loglevel", "warning",
	}, aof...)...)
	log, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	s.exit = make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.exit) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ping(s.sock); err == nil {
			return
		} else if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redis-server did not answer PING within 10s: %v\n%s", err, out)
		}
		select {
		case <-s.exit:
			out, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redis-server exited at start:\n%s", out)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Stop kills the server and waits for it to exit. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exit
	s.cmd = nil
	os.Remove(s.sock)
}

func ping(sock string) error {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
