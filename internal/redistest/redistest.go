// Package redistest runs a real redis-server for tests: on a temporary unix
// socket, with no persistence, stopped when the test ends. Tests that need
// Redis call [Start]; there is no fake.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/internal/childproc"
)

// Server is one redis-server process that can be stopped and started again
// on the same socket and ports, to test what happens while Redis is away.
type Server struct {
	t    testing.TB
	dir  string
	sock string // "" for a sentinel, which is reached on Port
	opts Options
	cmd  *exec.Cmd
	exit chan struct{}
}

// Options adds to the server Start runs.
type Options struct {
	// Persist keeps an append-only file synced on every write: after Stop
	// and Restart the server has its data back, as a production Redis with
	// persistence does after a crash.
	Persist bool
	// Port, when not zero, is a loopback TCP port to listen on as well
	// (see FreePort).
	Port int
	// TLS makes Port a TLS port; Conf must name the certificates.
	TLS bool
	// Conf are more configuration lines, such as "cluster-enabled yes".
	Conf []string
	// Sentinel runs the process as a Redis Sentinel on Port, with Conf as
	// its configuration, instead of as a server.
	Sentinel bool
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
	return StartWith(t, Options{})
}

// StartPersistent is Start with Options.Persist.
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{Persist: true})
}

// StartWith is Start with more options.
func StartWith(t testing.TB, opts Options) *Server {
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
	s := &Server{t: t, dir: dir, opts: opts}
	if !opts.Sentinel {
		s.sock = filepath.Join(dir, "redis.sock")
	}
	t.Cleanup(func() {
		s.Stop()
		os.RemoveAll(dir)
	})
	s.Restart()
	return s
}

// FreePort returns a loopback TCP port that was free a moment ago. It is
// picked below the kernel's range of ephemeral ports (32768 and up on
// Linux): a server killed and restarted on its port would otherwise find
// it taken now and then by some other process's outgoing connection.
func FreePort(t testing.TB) int {
	t.Helper()
	const lo, hi = 10000, 32000
	for range 1000 {
		port := lo + rand.IntN(hi-lo)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("redistest: no free loopback port found below 32000")
	return 0
}

// Addr is the server's loopback TCP address, when it has a Port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.opts.Port) }

// Dir is the server's working directory, removed when the test ends.
func (s *Server) Dir() string { return s.dir }

// Client returns a client of the server's unix socket (its TCP address for
// a sentinel), closed when the test ends.
func (s *Server) Client() *redis.Client {
	o := &redis.Options{Network: "unix", Addr: s.sock}
	if s.sock == "" {
		o = &redis.Options{Addr: s.Addr()}
	}
	c := redis.NewClient(o)
	s.t.Cleanup(func() { _ = c.Close() })
	return c
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
	conf := []string{"dir " + s.dir, "loglevel warning", fmt.Sprintf("port %d", s.opts.Port)}
	if s.opts.TLS {
		conf = append(conf, "port 0", fmt.Sprintf("tls-port %d", s.opts.Port))
	}
	if s.opts.Port != 0 {
		conf = append(conf, "bind 127.0.0.1")
	}
	if !s.opts.Sentinel {
		conf = append(conf, "unixsocket "+s.sock, "unixsocketperm 700", `save ""`)
		if s.opts.Persist {
			conf = append(conf, "appendonly yes", "appendfsync always")
		} else {
			conf = append(conf, "appendonly no")
		}
	}
	conf = append(conf, s.opts.Conf...)
	// A sentinel rewrites its file; a server's is written afresh each time.
	path := filepath.Join(s.dir, "redis.conf")
	if _, err := os.Stat(path); err != nil || !s.opts.Sentinel {
		if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
			s.t.Fatal(err)
		}
	}
	args := []string{path}
	if s.opts.Sentinel {
		args = append(args, "--sentinel")
	}
	cmd := exec.Command("redis-server", args...)
	// Dies with the test binary, also when a test times out and the
	// binary exits without running its cleanups.
	childproc.DieWithParent(cmd)
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
		if err := s.ping(); err == nil {
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
	if s.sock != "" {
		os.Remove(s.sock)
	}
}

// Pause stops the server with SIGSTOP: it keeps its connections and
// answers nothing, as a replica stuck behind a slow disk or a frozen VM.
// Resume lets it go on; Stop kills it paused or not.
func (s *Server) Pause() {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Fatal("redistest: Pause of a server that is not running")
	}
	if err := s.cmd.Process.Signal(stopSignal); err != nil {
		s.t.Fatalf("redistest: SIGSTOP: %v", err)
	}
}

// Resume lets a paused server go on (SIGCONT).
func (s *Server) Resume() {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Fatal("redistest: Resume of a server that is not running")
	}
	if err := s.cmd.Process.Signal(contSignal); err != nil {
		s.t.Fatalf("redistest: SIGCONT: %v", err)
	}
}

// Kill is Stop: the server is killed with SIGKILL, as in a crash, with no
// chance to write anything more. With Persist, what it acknowledged is in
// its append-only file all the same.
func (s *Server) Kill() { s.Stop() }

// Shutdown stops the server cleanly with the SHUTDOWN command, as an
// operator would, and waits for it to exit; Restart starts it again.
func (s *Server) Shutdown() {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
	network, addr := "unix", s.sock
	if addr == "" {
		network, addr = "tcp", s.Addr()
	}
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		s.t.Fatalf("redistest: connect to send SHUTDOWN: %v", err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Write([]byte("SHUTDOWN\r\n"))
	if err == nil {
		// The server answers only when it refuses; it closes the
		// connection when it goes.
		var line string
		line, err = bufio.NewReader(c).ReadString('\n')
		if err == nil {
			err = fmt.Errorf("SHUTDOWN answered %q", strings.TrimSpace(line))
		} else {
			err = nil
		}
	}
	c.Close()
	if err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
	select {
	case <-s.exit:
	case <-time.After(20 * time.Second):
		s.t.Fatal("redistest: redis-server did not exit within 20s of SHUTDOWN")
	}
	s.cmd = nil
	if s.sock != "" {
		os.Remove(s.sock)
	}
}

func (s *Server) ping() error {
	network, addr := "unix", s.sock
	if addr == "" {
		network, addr = "tcp", s.Addr()
	}
	c, err := net.DialTimeout(network, addr, time.Second)
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
