package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/imhub/imhub/callback/forward"
	"github.com/imhub/imhub/hub/broker"
)

// forwardDeadUsage is the help of hub forward-dead.
const forwardDeadUsage = `Usage: hub forward-dead list|replay -redis URL -app SdkAppid [-n N]

Forwards that failed for -forward-max-age are kept as dead letters in Redis,
per app. list prints them, oldest first, one JSON object a line (the query
without its Sign); replay queues them again, as if just accepted, for the
running hubs to deliver, signed afresh.

Flags:
`

// forwardDead runs hub forward-dead with args (after "forward-dead") and
// returns the exit code.
func forwardDead(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hub forward-dead", flag.ContinueOnError)
	fs.SetOutput(stderr)
	redisURL := fs.String("redis", "", "Redis `URL` the hubs use [$HUB_REDIS]")
	caFile := fs.String("redis-ca", "", "PEM `file` of the CAs for a rediss:// URL [$HUB_REDIS_CA]")
	app := fs.String("app", "", "the app's `SdkAppid`")
	n := fs.Int64("n", 100, "at most this many dead letters, oldest first")
	fs.Usage = func() {
		fmt.Fprint(stderr, forwardDeadUsage)
		fs.PrintDefaults()
	}
	protectSecrets(fs)
	if err := setFromEnv(fs, env, "redis", "redis-ca"); err != nil {
		fmt.Fprintf(stderr, "hub forward-dead: %v\n", err)
		return 2
	}
	if len(args) == 0 {
		fs.Usage()
		return 2
	}
	cmd, rest := args[0], args[1:]
	if strings.HasPrefix(cmd, "-") { // flags first: -h, or a mistake said below
		cmd, rest = "", args
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "hub forward-dead: "+format+"\n", a...)
		return 2
	}
	switch {
	case cmd == "" && fs.NArg() > 0:
		return fail("put list or replay before the flags")
	case cmd != "list" && cmd != "replay":
		return fail("%q: want list or replay", cmd)
	case *redisURL == "":
		return fail("-redis is required: dead letters are kept in Redis")
	case *app == "":
		return fail("-app is required")
	case *n <= 0:
		return fail("-n must be greater than zero")
	}
	if _, err := strconv.ParseUint(*app, 10, 64); err != nil {
		return fail("-app %q is not a SdkAppid", *app)
	}
	if err := checkRedisURL(*redisURL, *caFile); err != nil {
		return fail("%v", err)
	}
	client, err := broker.NewRedisClient(*redisURL, *caFile)
	if err != nil {
		return fail("%v", err)
	}
	defer client.Close()
	store := forward.NewRedisStore(client, forward.RedisConfig{})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if cmd == "replay" {
		replayed, err := store.ReplayDead(ctx, *app, *n, time.Now())
		if err != nil {
			fmt.Fprintf(stderr, "hub forward-dead: %v (%d replayed before it)\n", err, replayed)
			return 1
		}
		fmt.Fprintf(stdout, "replayed %d dead letters of app %s\n", replayed, *app)
		return 0
	}
	letters, err := store.ListDead(ctx, *app, *n)
	if err != nil {
		fmt.Fprintf(stderr, "hub forward-dead: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for _, d := range letters {
		_ = enc.Encode(map[string]any{
			"ref": d.Ref, "id": d.ID, "app": d.App, "command": d.Command, "query": forward.WithoutSign(d.Query),
			"accepted": time.UnixMilli(d.Accepted).UTC().Format(time.RFC3339), "attempts": d.Attempts,
			"last_error": d.LastError, "body": string(d.Body),
		})
	}
	return 0
}
