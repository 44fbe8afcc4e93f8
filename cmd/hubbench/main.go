// Command hubbench drives a hub through its public interfaces only (the
// WebSocket and the IM callback endpoint) and reports what it sustains: N
// WebSocket clients over C channels, a publisher posting signed group
// message callbacks at a target rate with the send time inside each
// message, and the resulting deliveries, loss, end-to-end latency, and the
// hub process's CPU and memory.
//
//	hubbench -preset fanout -start -redis          # start a hub and Redis, run the preset
//	hubbench -hub http://127.0.0.1:8080 -hub-pid 1234 -conns 2000 -channels 20 -rate 100
//	hubbench -preset forward -start -redis         # what forwarding to the app's backend costs
//	hubbench -preset fanout -start -redis -target centrifugo   # the same load against Centrifugo
//	hubbench -preset floor                         # against a bare program: the machine's floor
//	hubbench -preset compare                       # imhub, Centrifugo and the floor in turns, and ratios
//	hubbench -preset room                          # one channel, every client in it, rates stepped, imhub/Centrifugo/floor
//	hubbench -preset scaling -plot scaling.svg     # cost as connections and fan-out grow
//	hubbench -preset wait                          # -redis-wait-replicas 0 and auto in turns, on a primary with a replica
//
// It stops by itself after -duration; every loop in it is bounded. The
// presets are in presets.go; the soak, hours of mixed traffic against two
// hubs, is a command of its own, cmd/hubsoak.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/imhub/imhub/internal/hubload"
)

func main() {
	if floorMain() {
		return
	}
	cfg, cpuProfile, err := parseArgs(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2) // parseArgs said why
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "hubbench: -cpuprofile: "+err.Error())
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hubbench: "+err.Error())
		pprof.StopCPUProfile()
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// parseArgs is the run the command line asks for: the defaults of the
// preset it names, then the flags it gives, which win. It also returns
// where to write the tool's own CPU profile (-cpuprofile). What is wrong
// with the arguments, and the usage on -h, are written to usage too.
func parseArgs(args []string, usage io.Writer) (cfg Config, cpuProfile string, err error) {
	cfg, err = configFor(presetArg(args))
	if err != nil {
		fmt.Fprintln(usage, "hubbench: "+err.Error())
		return Config{}, "", err
	}
	fs := flag.NewFlagSet("hubbench", flag.ContinueOnError)
	fs.SetOutput(usage)
	presetName := fs.String("preset", cfg.Preset.name, "named scenario: "+presetNames())
	fs.StringVar(&cfg.Hub, "hub", "", "base URL of a running hub, http://127.0.0.1:8080")
	fs.IntVar(&cfg.HubPID, "hub-pid", 0, "process id of that hub, to read its CPU and memory")
	fs.BoolVar(&cfg.Start, "start", cfg.Start, "start a hub (see -hub-bin) for the run")
	fs.StringVar(&cfg.HubBin, "hub-bin", "bin/hub", "hub binary for -start")
	fs.BoolVar(&cfg.Redis, "redis", cfg.Redis, "with -start: start a redis-server and give the hub -redis")
	fs.StringVar(&cfg.Secret, "secret", cfg.Secret, "the hub's HS256 JWT secret (tokens are minted with it)")
	fs.StringVar(&cfg.App, "app", cfg.App, "SdkAppid")
	fs.StringVar(&cfg.CallbackToken, "callback-token", cfg.CallbackToken, "the app's callback token (callbacks are signed with it)")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "WebSocket connections")
	fs.IntVar(&cfg.Channels, "channels", cfg.Channels, "group channels the connections are spread over (0: none)")
	fs.BoolVar(&cfg.UserChannels, "user-channels", cfg.UserChannels, "also send one-to-one messages to the connections' own user channels")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "callbacks per second (0: as fast as the publishers go)")
	fs.IntVar(&cfg.Publishers, "publishers", cfg.Publishers, "concurrent callback senders")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to publish (or, idle, to hold the connections)")
	fs.IntVar(&cfg.Payload, "payload", cfg.Payload, "message text size in bytes")
	fs.IntVar(&cfg.Sources, "sources", cfg.Sources, "loopback source addresses to spread connections over (127.0.0.1…127.0.0.N), ~28k connections each")
	fs.BoolVar(&cfg.JSONOnly, "json", false, "print only the JSON line")
	fs.BoolVar(&cfg.Forward, "forward", false, "with -start: start a backend in hubbench that answers OK and give the hub -forward to it; the run fails unless the backend receives every accepted callback")
	fs.IntVar(&cfg.Probes, "probes", cfg.Probes, "forward preset: Before* callbacks timed through the hub, and as many straight to the backend")
	fs.StringVar(&cfg.Target, "target", cfg.Target, "the server measured: imhub, centrifugo, or floor (a bare program inside hubbench)")
	fs.StringVar(&cfg.CentrifugoBin, "centrifugo-bin", defaultCentrifugoBin(), "Centrifugo binary for -start -target centrifugo (make bench-compare installs it)")
	fs.IntVar(&cfg.FrameBytes, "frame-bytes", cfg.FrameBytes, "floor: frame size on the wire (0: the hub's for -payload)")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "compare: measure each server this many times, in turns; wait: each side (figures are medians)")
	fs.StringVar(&cfg.Plot, "plot", cfg.Plot, "scaling: write the SVG plot here (and the table beside it, .md)")
	fs.StringVar(&cfg.RoomSteps, "room-steps", cfg.RoomSteps, "room: the fleets and their rates, clients:messages/s,…;… (each fleet a fresh server)")
	fs.StringVar(&cfg.Targets, "targets", cfg.Targets, "room: the servers measured in turns, of imhub, centrifugo, floor")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write the tool's own CPU profile to `file`")
	if err := fs.Parse(args); err != nil {
		return Config{}, "", err
	}
	if *presetName != cfg.Preset.name {
		// The defaults came from the first; the flag kept the last.
		err := fmt.Errorf("-preset given twice, %q and %q: give one", cfg.Preset.name, *presetName)
		fmt.Fprintln(usage, "hubbench: "+err.Error())
		return Config{}, "", err
	}
	return cfg, cpuProfile, nil
}

// presetArg finds -preset's value among the arguments, before the flags
// are defined: the preset gives them their defaults.
func presetArg(args []string) string {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, "preset="); ok {
			return v
		}
		if a == "preset" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

type usageError struct{ error }

// run checks cfg and runs its preset. Every run ends: each preset bounds
// the whole of it by its duration plus the time to connect, drain and
// measure.
func run(ctx context.Context, cfg Config, out, progress *os.File) error {
	if err := cfg.validate(); err != nil {
		return usageError{err}
	}
	hubload.RaiseFileLimit()
	return cfg.Preset.run(ctx, cfg, out, progress)
}

// measurer measures the environment of a run: measure, or findMax.
type measurer func(ctx context.Context, cfg Config, e *env, progress io.Writer) (*Result, error)

// runOnce starts what cfg asks for, measures it with take, and then, if
// then is not nil, gives it the environment before tearing it down. A
// result whose forwards did not all arrive is returned with an error.
func runOnce(ctx context.Context, cfg Config, take measurer, progress io.Writer, then func(*env, *backend) error) (*Result, error) {
	var be *backend
	if cfg.Forward {
		var err error
		if be, err = startBackend(); err != nil {
			return nil, fmt.Errorf("start the backend: %w", err)
		}
		defer be.close()
		cfg.forwardTo = be.url
		be.down.Store(cfg.backendDown)
	}
	env, err := setUp(ctx, cfg, progress)
	if err != nil {
		return nil, err
	}
	defer env.tearDown()
	env.backend = be
	res, err := take(ctx, cfg, env, progress)
	if err != nil {
		return nil, err
	}
	if res.ForwardMissing > 0 {
		return res, fmt.Errorf("the backend did not receive %d of the %d callbacks the hub accepted", res.ForwardMissing, res.ForwardAccepted)
	}
	if then != nil {
		return res, then(env, be)
	}
	return res, nil
}

// budget is the time a run may take beyond -duration: to connect, drain
// and measure, and with forwarding a second run, the backlog's drain and
// the probe.
func (c Config) budget() time.Duration {
	b := 2*time.Minute + time.Duration(c.Conns)*2*time.Millisecond
	if c.forwards() {
		// A second run, the backlog's drain and the probe.
		b += c.Duration + c.drainLimit + time.Duration(c.Probes)*20*time.Millisecond
	}
	return b
}
