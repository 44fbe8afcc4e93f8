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
	ctx, stop := signalContext(context.Background())
	defer stop()
	log := newLogger(cfg, os.Stderr)
	if err := run(ctx, cfg, os.Stdout, log); err != nil {
		log.Error("hub stopped", "err", err)
		os.Exit(1)
	}
}

// stopSignal is the cause of run's context when a signal ended it.
type stopSignal struct{ sig os.Signal }

func (s stopSignal) Error() string { return "received " + s.sig.String() }

// signalContext is a context done on the first SIGINT or SIGTERM, with a
// stopSignal as its cause: shutdown drains differently for Ctrl-C in -dev
// mode. After that first signal the default action is back, so that a
// second Ctrl-C ends a drain at once. stop ends the watch.
func signalContext(parent context.Context) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer signal.Stop(ch)
		select {
		case sig := <-ch:
			cancel(stopSignal{sig})
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		cancel(nil)
		<-done
	}
}

// interrupted reports whether ctx ended with Ctrl-C (SIGINT).
func interrupted(ctx context.Context) bool {
	var s stopSignal
	return errors.As(context.Cause(ctx), &s) && s.sig == os.Interrupt
}
