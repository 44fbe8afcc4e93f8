// Command hubdemo shows the hub at work with realistic IM traffic.
//
// By default it posts IM callbacks to a running hub through its real
// callback endpoint, so a newcomer sees a lively dashboard: group messages
// of every element type (each first put to the app's backend with
// Group.CallbackBeforeSendMsg, and sent only when allowed), topic groups,
// recalls, one-to-one messages, withdrawals and reads, users logging in and
// out, members joining and leaving, read receipts, and groups changed and
// disbanded. It prints the verdict the IM would get for each Before
// callback, and stops after -duration.
//
//	hubdemo -url http://127.0.0.1:8080 -app 1400000000 -rate 5
//
// With -backend it is instead a stand-in for the app's own backend, which
// the hub forwards callbacks to (hub -forward): it logs each callback,
// checks Sign when given the app's -token, and denies one group message in
// ten.
//
//	hubdemo -backend 127.0.0.1:9090
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var (
		base     = flag.String("url", "http://127.0.0.1:8080", "the hub's base URL")
		app      = flag.String("app", "1400000000", "SdkAppid")
		token    = flag.String("token", "", "the app's callback token, if it has one: callbacks are signed with it (with -backend: checked)")
		rate     = flag.Float64("rate", 5, "callbacks per second")
		duration = flag.Duration("duration", 10*time.Minute, "stop after this long")
		count    = flag.Int("n", 0, "stop after this many callbacks (0: no limit)")
		backend  = flag.String("backend", "", "instead of sending, be the app's own backend on this `address` (such as 127.0.0.1:9090) until interrupted")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *backend != "" {
		log := slog.New(slog.NewTextHandler(os.Stdout, nil))
		err = serveBackend(ctx, *backend, backendConfig{App: *app, Token: *token, Log: log}, os.Stdout)
	} else {
		ctx, cancel := context.WithTimeout(ctx, *duration)
		defer cancel()
		err = run(ctx, *base, *app, *token, *rate, *count, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hubdemo: "+err.Error())
		os.Exit(1)
	}
}
