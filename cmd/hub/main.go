// Command hub is the imhub server: it receives Tencent Cloud Chat callbacks
// on /im/callback and streams them to WebSocket clients. Run hub -h for its
// flags; each has a HUB_* environment variable too.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "forward-dead" {
		os.Exit(forwardDead(context.Background(), os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hub: "+err.Error())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := newLogger(cfg, os.Stderr)
	if err := run(ctx, cfg, os.Stdout, log); err != nil {
		log.Error("hub stopped", "err", err)
		os.Exit(1)
	}
}
