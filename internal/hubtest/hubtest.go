// Package hubtest builds the hub binary and runs it as real processes for
// tests: flags, environment, logs, signals and exit codes are those a user
// gets.
package hubtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imhub/imhub/internal/childproc"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// Main runs a test binary's tests and removes the hub binary after them.
// Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// Binary builds cmd/hub once per test binary, with the race detector when
// the tests have it, and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "hubtest")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "hub")
		args := []string{"build", "-o", buildPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "github.com/imhub/imhub/cmd/hub")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build cmd/hub: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Process is one running hub.
type Process struct {
	t      testing.TB
	cmd    *exec.Cmd
	args   []string
	env    []string
	Addr   string // host:port it listens on
	stdout SyncBuffer
	stderr SyncBuffer
	exited chan struct{}
	err    error
}

// Start runs the hub with args (-addr 127.0.0.1:0 and -log-format json are
// added unless given, and -spool-dir off unless the test places the spool
// itself) and env added to the test's environment, waits until it listens,
// and kills it when the test ends if it still runs.
//
// The hub's default spool directory is the user's, one for every hub: two
// test hubs must not share it, nor leave events in it for a hub run later.
// A test places the spool by giving -spool-dir, or HUB_SPOOL_DIR, HOME or
// XDG_STATE_HOME in env.
func Start(t testing.TB, args []string, env ...string) *Process {
	t.Helper()
	p := Launch(t, args, env...)
	p.WaitListening()
	return p
}

// Launch starts the hub like Start but does not wait for it to listen.
func Launch(t testing.TB, args []string, env ...string) *Process {
	t.Helper()
	joined := " " + strings.Join(args, " ")
	if !strings.Contains(joined, " -addr") {
		args = append([]string{"-addr", "127.0.0.1:0"}, args...)
	}
	if !strings.Contains(joined, " -log-format") {
		args = append([]string{"-log-format", "json"}, args...)
	}
	if !strings.Contains(joined, " -spool-dir") && !placesSpool(env) {
		args = append([]string{"-spool-dir", "off"}, args...)
	}
	p := &Process{t: t, args: args, env: env, exited: make(chan struct{})}
	p.cmd = exec.Command(Binary(t), args...)
	p.cmd.Env = append(os.Environ(), env...)
	// Dies with the test binary, also when it times out.
	childproc.DieWithParent(p.cmd)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start hub: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("hub %v stderr:\n%s", args, p.Stderr())
		}
	})
	return p
}

// placesSpool reports whether env says where the hub's spool goes.
func placesSpool(env []string) bool {
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "HUB_SPOOL_DIR", "HOME", "XDG_STATE_HOME":
			return true
		}
	}
	return false
}

// WaitListening waits for the "listening" log line and records Addr.
func (p *Process) WaitListening() {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range p.LogLines() {
			if l["msg"] == "listening" {
				p.Addr, _ = l["addr"].(string)
				return
			}
		}
		select {
		case <-p.exited:
			p.t.Fatalf("hub exited before listening: %v\n%s", p.err, p.Stderr())
		case <-time.After(10 * time.Millisecond):
		}
	}
	p.t.Fatalf("hub did not listen within 30s:\n%s", p.Stderr())
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// RSS returns the process's resident set size in bytes, from /proc.
func (p *Process) RSS() int64 {
	p.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		p.t.Fatalf("read hub status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int64
			fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kib)
			return kib << 10
		}
	}
	p.t.Fatalf("no VmRSS in /proc/%d/status", p.Pid())
	return 0
}

// URL returns http://Addr + path.
func (p *Process) URL(path string) string { return "http://" + p.Addr + path }

// Stdout and Stderr return what the process wrote so far.
func (p *Process) Stdout() string { return p.stdout.String() }

// Stderr returns what the process logged so far.
func (p *Process) Stderr() string { return p.stderr.String() }

// LogLines returns the JSON log lines written so far.
func (p *Process) LogLines() []map[string]any {
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.Stderr()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			lines = append(lines, m)
		}
	}
	return lines
}

// WaitLog waits until a log line satisfies match.
func (p *Process) WaitLog(timeout time.Duration, what string, match func(map[string]any) bool) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, l := range p.LogLines() {
			if match(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no log line %s within %v:\n%s", what, timeout, p.Stderr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal hub: %v", err)
	}
}

// Kill kills the process with SIGKILL, as a crash or the kernel's OOM
// killer would: nothing is flushed or drained. It returns once the process
// has exited.
func (p *Process) Kill() {
	p.t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	p.Signal(syscall.SIGKILL)
	<-p.exited
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Restart starts the hub again, after it exited, with the arguments and
// environment it was started with, on the address it listened on (so
// clients that know the address find it again), and waits until it
// listens. It returns the new process; p stays as it was, with its logs.
func (p *Process) Restart() *Process {
	p.t.Helper()
	if !p.Exited() {
		p.t.Fatal("hubtest: Restart while the hub still runs")
	}
	args := slices.Clone(p.args)
	if p.Addr != "" {
		for i, a := range args {
			switch {
			case (a == "-addr" || a == "--addr") && i+1 < len(args):
				args[i+1] = p.Addr
			case strings.HasPrefix(a, "-addr=") || strings.HasPrefix(a, "--addr="):
				args[i] = "-addr=" + p.Addr
			}
		}
	}
	next := Launch(p.t, args, p.env...)
	next.WaitListening()
	return next
}

// Wait waits for the process to exit and returns its exit code.
func (p *Process) Wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("hub did not exit within %v:\n%s", timeout, p.Stderr())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatalf("wait hub: %v", p.err)
	}
	return 0
}

// Get fetches path from the hub and returns the status and body.
func (p *Process) Get(path string) (int, string) {
	p.t.Helper()
	resp, err := http.Get(p.URL(path))
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// WaitReady waits until /readyz answers want (200 or 503).
func (p *Process) WaitReady(want int) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := p.Get("/readyz")
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("/readyz answered %d %q, not %d, for 30s", code, body, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SyncBuffer is a bytes.Buffer that a process or a logger may write to
// while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
