// Command hubsoak runs two hubs joined by Redis under the mixed traffic of
// an ordinary day for a long time, restarts Redis on the way, and samples
// the hubs' and Redis's resources. It fails when a resource keeps growing
// (growth.go) or a steady client misses an event. It drives the hubs
// through their public interfaces only, as cmd/hubbench does.
//
//	hubsoak -duration 10m       # make soak SOAK=10m
//
// The traffic: steady clients that must miss nothing, churning clients,
// tokens that expire, slow clients closed as too slow (clients.go), and
// signed callbacks at -rate, half to each hub. The run ends by itself
// after -duration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/imhub/imhub/internal/hubload"
)

// config is one soak run.
type config struct {
	HubBin        string
	Secret        string
	App           string
	CallbackToken string
	// Conns is the users u0…u<Conns-1>: the steady clients are the
	// first, the churners pick from the rest, and the one-to-one
	// messages go to them all.
	Conns        int
	Channels     int // group channels G0…
	UserChannels bool
	Rate         float64 // callbacks per second, over both hubs
	Publishers   int     // concurrent senders to each hub
	Duration     time.Duration
	Payload      int
	Sample       time.Duration // between samples (0: the plan's 10s)
	Small        bool          // a few clients of each kind only
}

func defaultConfig() config {
	return config{
		HubBin:        "bin/hub",
		Secret:        "hubbench-secret-hubbench-secret-hubbench",
		App:           "1400000000",
		CallbackToken: "hubbench-callback-token",
		Conns:         100,
		Channels:      20,
		UserChannels:  true,
		Rate:          20,
		Publishers:    4,
		Duration:      time.Hour,
		Payload:       200,
	}
}

func (c config) validate() error {
	switch {
	case c.Duration < 2*time.Minute || c.Duration > 24*time.Hour:
		return errors.New("-duration of a soak must be between 2m and 24h")
	case c.Conns < 0, c.Channels < 0, c.Rate < 0, c.Payload < 0:
		return errors.New("sizes and rates must not be negative")
	case c.Conns > 0 && c.Channels == 0 && !c.UserChannels:
		return errors.New("connections need -channels or -user-channels")
	case c.Publishers < 1:
		return errors.New("-publishers must be at least 1")
	}
	return nil
}

func main() {
	cfg, err := parseArgs(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2) // the flag package said why
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "hubsoak: "+err.Error())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hubsoak: "+err.Error())
		os.Exit(1)
	}
}

// parseArgs is the run the command line asks for; what is wrong with it,
// and the usage on -h, are written to usage.
func parseArgs(args []string, usage io.Writer) (config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("hubsoak", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&cfg.HubBin, "hub-bin", cfg.HubBin, "hub binary to start, twice (make build)")
	fs.StringVar(&cfg.Secret, "secret", cfg.Secret, "the hubs' HS256 JWT secret (tokens are minted with it)")
	fs.StringVar(&cfg.App, "app", cfg.App, "SdkAppid")
	fs.StringVar(&cfg.CallbackToken, "callback-token", cfg.CallbackToken, "the app's callback token (callbacks are signed with it)")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "users the clients are and the one-to-one messages go to")
	fs.IntVar(&cfg.Channels, "channels", cfg.Channels, "group channels the messages and clients are spread over")
	fs.BoolVar(&cfg.UserChannels, "user-channels", cfg.UserChannels, "also send one-to-one messages to the users' own channels")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "callbacks per second, half to each hub")
	fs.IntVar(&cfg.Publishers, "publishers", cfg.Publishers, "concurrent callback senders to each hub")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long the soak runs (2m to 24h; growth is judged on the last third)")
	fs.IntVar(&cfg.Payload, "payload", cfg.Payload, "message text size in bytes")
	fs.DurationVar(&cfg.Sample, "soak-sample", 0, "time between samples of the hubs' resources (default 10s)")
	fs.BoolVar(&cfg.Small, "soak-small", false, "a few clients of each kind only")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// run soaks the hubs for cfg.Duration, and a little longer to start them
// and judge; it fails when the soak does.
func run(ctx context.Context, cfg config, out, progress io.Writer) error {
	hubload.RaiseFileLimit()
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+2*time.Minute)
	defer cancel()
	return runSoak(ctx, cfg, out, progress)
}
