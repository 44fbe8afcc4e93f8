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
//	hubbench -preset soak -duration 10m            # two hubs and Redis under mixed traffic (soak.go)
//	hubbench -preset fanout -start -redis -target centrifugo   # the same load against Centrifugo
//	hubbench -preset floor                         # against a bare program: the machine's floor
//	hubbench -preset compare                       # imhub, Centrifugo and the floor in turns, and ratios
//	hubbench -preset scaling -plot scaling.svg     # cost as connections and fan-out grow
//
// It stops by itself after -duration; every loop in it is bounded.
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
)

func main() {
	if floorMain() {
		return
	}
	cfg := defaultConfig()
	// A preset sets the defaults of the flags; flags given still win.
	if name := presetArg(os.Args[1:]); name != "" {
		p, ok := presets[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "hubbench: unknown preset %q; presets: %s\n", name, presetNames())
			os.Exit(2)
		}
		p(&cfg)
		cfg.Preset = name
	}
	flag.StringVar(&cfg.Preset, "preset", cfg.Preset, "named scenario: "+presetNames())
	flag.StringVar(&cfg.Hub, "hub", "", "base URL of a running hub, http://127.0.0.1:8080")
	flag.IntVar(&cfg.HubPID, "hub-pid", 0, "process id of that hub, to read its CPU and memory")
	flag.BoolVar(&cfg.Start, "start", cfg.Start, "start a hub (see -hub-bin) for the run")
	flag.StringVar(&cfg.HubBin, "hub-bin", "bin/hub", "hub binary for -start")
	flag.BoolVar(&cfg.Redis, "redis", cfg.Redis, "with -start: start a redis-server and give the hub -redis")
	flag.StringVar(&cfg.Secret, "secret", cfg.Secret, "the hub's HS256 JWT secret (tokens are minted with it)")
	flag.StringVar(&cfg.App, "app", cfg.App, "SdkAppid")
	flag.StringVar(&cfg.CallbackToken, "callback-token", cfg.CallbackToken, "the app's callback token (callbacks are signed with it)")
	flag.IntVar(&cfg.Conns, "conns", cfg.Conns, "WebSocket connections")
	flag.IntVar(&cfg.Channels, "channels", cfg.Channels, "group channels the connections are spread over (0: none)")
	flag.BoolVar(&cfg.UserChannels, "user-channels", cfg.UserChannels, "also send one-to-one messages to the connections' own user channels")
	flag.Float64Var(&cfg.Rate, "rate", cfg.Rate, "callbacks per second (0: as fast as the publishers go)")
	flag.IntVar(&cfg.Publishers, "publishers", cfg.Publishers, "concurrent callback senders")
	flag.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to publish (or, idle, to hold the connections)")
	flag.IntVar(&cfg.Payload, "payload", cfg.Payload, "message text size in bytes")
	flag.IntVar(&cfg.Sources, "sources", cfg.Sources, "loopback source addresses to spread connections over (127.0.0.1…127.0.0.N), ~28k connections each")
	flag.BoolVar(&cfg.JSONOnly, "json", false, "print only the JSON line")
	flag.BoolVar(&cfg.Forward, "forward", false, "with -start: start a backend in hubbench that answers OK and give the hub -forward to it; the run fails unless the backend receives every accepted callback")
	flag.IntVar(&cfg.Probes, "probes", cfg.Probes, "forward preset: Before* callbacks timed through the hub, and as many straight to the backend")
	flag.DurationVar(&cfg.SoakSample, "soak-sample", 0, "soak: time between samples of the hubs' resources (default 10s)")
	flag.BoolVar(&cfg.SoakSmall, "soak-small", false, "soak: a few clients of each kind only")
	flag.StringVar(&cfg.Target, "target", cfg.Target, "the server measured: imhub, centrifugo, or floor (a bare program inside hubbench)")
	flag.StringVar(&cfg.CentrifugoBin, "centrifugo-bin", defaultCentrifugoBin(), "Centrifugo binary for -start -target centrifugo (make bench-compare installs it)")
	flag.IntVar(&cfg.FrameBytes, "frame-bytes", cfg.FrameBytes, "floor: frame size on the wire (0: the hub's for -payload)")
	flag.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "compare: measure each server this many times, in turns (figures are medians)")
	flag.StringVar(&cfg.Plot, "plot", cfg.Plot, "scaling: write the SVG plot here (and the table beside it, .md)")
	cpuProfile := flag.String("cpuprofile", "", "write the tool's own CPU profile to `file`")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
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

// presetArg finds -preset's value among the arguments.
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

func run(ctx context.Context, cfg Config, out, progress *os.File) error {
	if err := cfg.validate(); err != nil {
		return usageError{err}
	}
	raiseFileLimit()
	if cfg.Preset == "soak" {
		ctx, cancel := context.WithTimeout(ctx, cfg.Duration+2*time.Minute)
		defer cancel()
		return runSoak(ctx, cfg, out, progress)
	}
	switch cfg.Preset {
	case "compare":
		return runCompare(ctx, cfg, out, progress)
	case "wait":
		return runWait(ctx, cfg, out, progress)
	case "scaling":
		return runScaling(ctx, cfg, out, progress)
	}
	// Every run ends: the whole of it is bounded by its duration plus the
	// time to connect, drain and measure.
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+cfg.budget())
	defer cancel()
	if cfg.Preset == "forward" {
		return runForward(ctx, cfg, out, progress)
	}
	res, err := runOnce(ctx, cfg, progress, nil)
	if res != nil {
		res.print(out, cfg.JSONOnly)
	}
	return err
}

// runOnce starts what cfg asks for, measures, and then, if then is not
// nil, gives it the environment before tearing it down. A result whose
// forwards did not all arrive is returned with an error.
func runOnce(ctx context.Context, cfg Config, progress io.Writer, then func(*env, *backend) error) (*Result, error) {
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
	var res *Result
	if cfg.Preset == "max" {
		res, err = findMax(ctx, cfg, env, progress)
	} else {
		res, err = measure(ctx, cfg, env, progress)
	}
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
func (c Config) budget() time.Duration {
	b := 2*time.Minute + time.Duration(c.Conns)*2*time.Millisecond
	if c.Preset == "max" {
		b += 10 * c.Duration
	}
	if c.Forward || c.Preset == "forward" {
		// A second run, the backlog's drain and the probe.
		b += c.Duration + c.drainLimit + time.Duration(c.Probes)*20*time.Millisecond
	}
	return b
}
