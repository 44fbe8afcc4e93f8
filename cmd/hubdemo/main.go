// Command hubdemo shows the hub at work with realistic IM traffic.
//
// By default it posts IM callbacks to a running hub through its real
// callback endpoint, so a newcomer sees a lively dashboard: group messages
// of every element type (each first put to the app's backend with
// Group.CallbackBeforeSendMsg, and sent only when allowed), topic groups,
// recalls, one-to-one messages, withdrawals and reads, users logging in and
// out, members joining and leaving, read receipts, and groups changed and
// disbanded. It makes its groups first (Group.CallbackAfterCreateGroup),
// so that a hub that follows the IM's membership (hub -dev -dev-im) knows
// them, and every 30 callbacks an admin removes the dashboard's IM user
// (-page-user) from one of them, to invite them back 15 later. It prints
// the verdict the IM would get for each Before callback, and those
// removals, and stops after -duration.
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
		pageUser = flag.String("page-user", "jared", "the IM user the dashboard signs in as (a hub run with -dev-im): a member of every group from the start, "+
			"removed from one every 30 callbacks and invited back 15 later; empty: none")
		backend = flag.String("backend", "", "instead of sending, be the app's own backend on this `address` (such as 127.0.0.1:9090) until interrupted")
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
		err = run(ctx, demoConfig{Base: *base, App: *app, Token: *token, Rate: *rate, Count: *count, PageUser: *pageUser}, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hubdemo: "+err.Error())
		os.Exit(1)
	}
}
