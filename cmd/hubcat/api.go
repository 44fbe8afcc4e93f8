package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/imhub/imhub/hub/apiclient"
)

// apiCommand runs "hubcat publish" or "hubcat presence" with args, the
// command line after the command's name, and returns the process's exit
// code.
func apiCommand(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	if err := runAPI(ctx, name, args, os.Getenv, stdout, stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "hubcat "+name+": "+err.Error())
		}
		return 1
	}
	return 0
}

// runAPI calls the server API: publish prints {"offset": …}, presence the
// users of a channel or the connections of a user, as the hub answers.
func runAPI(ctx context.Context, name string, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubcat "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("hub", "http://127.0.0.1:8080", "base URL of the hub")
	app := fs.String("app", "1400000000", "SdkAppid")
	key := fs.String("key", "", "API key (or $HUB_API_KEY)")
	channel := fs.String("channel", "", "channel: user:<UserID> or group:<GroupId> (presence: app too)")
	var user, idem *string
	switch name {
	case "publish":
		idem = fs.String("idempotency-key", "", "a retry with the same key within the dedupe window is not published again")
		fs.Usage = func() {
			fmt.Fprintln(stderr, "Usage: hubcat publish -key KEY -channel user:jared '{\"text\":\"hello\"}'\n\nPublishes a custom event; the data is the argument, JSON.\n\nFlags:")
			fs.PrintDefaults()
		}
	case "presence":
		user = fs.String("user", "", "a user: whether online, and with how many connections")
		fs.Usage = func() {
			fmt.Fprintln(stderr, "Usage: hubcat presence -key KEY (-channel group:G1 | -user jared)\n\nFlags:")
			fs.PrintDefaults()
		}
	default:
		return fmt.Errorf("unknown command %q", name)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" {
		*key = env("HUB_API_KEY")
	}
	if *key == "" {
		return errors.New("-key or $HUB_API_KEY is required (a -dev hub prints its demo key)")
	}
	c := apiclient.New(*base, *app, *key)
	var out any
	switch name {
	case "publish":
		if fs.NArg() != 1 {
			return errors.New("want the event's data, one JSON argument, such as '{\"text\":\"hello\"}'")
		}
		data := json.RawMessage(strings.TrimSpace(fs.Arg(0)))
		if !json.Valid(data) {
			return errors.New("the data is not JSON: quote a string as '\"hello\"'")
		}
		off, dup, err := c.Publish(ctx, *channel, data, *idem)
		if err != nil {
			return err
		}
		out = map[string]any{"offset": off, "duplicate": dup}
	case "presence":
		if fs.NArg() != 0 {
			return fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		if *user != "" {
			n, err := c.Connections(ctx, *user)
			if err != nil {
				return err
			}
			out = map[string]any{"online": n > 0, "connections": n}
		} else {
			users, err := c.Presence(ctx, *channel)
			if err != nil {
				return err
			}
			out = map[string]any{"users": users}
		}
	}
	b, _ := json.Marshal(out)
	_, err := fmt.Fprintf(stdout, "%s\n", b)
	return err
}
