package main

import (
	"errors"
	"slices"
	"strings"
	"time"
)

// Config is one run.
type Config struct {
	Preset        string
	Hub           string
	HubPID        int
	Start         bool
	HubBin        string
	Redis         bool
	Secret        string
	App           string
	CallbackToken string
	Conns         int
	Channels      int
	UserChannels  bool
	Rate          float64
	Publishers    int
	Duration      time.Duration
	Payload       int
	Sources       int
	JSONOnly      bool
	// Forward starts a backend in this process and has the hub forward
	// the app's callbacks to it (PROTOCOL §5).
	Forward bool
	// Probes is how many Before* callbacks the forward preset times.
	Probes int
	// forwardTo is the backend's URL, for the hub's -forward.
	forwardTo string
	// drainLimit is how long the backend is given, after publishing
	// ends, to receive every accepted callback.
	drainLimit time.Duration
	// backendDown has the backend answer 503 to every callback, as one
	// that is down would: a test of the run's own failure.
	backendDown bool
	SoakSample  time.Duration // soak: between samples (0: 10s)
	SoakSmall   bool          // soak: a few clients of each kind only
	// Target is the server under test: targetHub, targetCentrifugo, or
	// targetFloor (a bare program inside hubbench, floor.go).
	Target string
	// CentrifugoBin is the Centrifugo binary -start runs for the
	// centrifugo target.
	CentrifugoBin string
	// FrameBytes is the size of the floor's frames on the wire (0: about
	// what the hub sends for a message of -payload bytes).
	FrameBytes int
	// Plot is where the scaling preset writes its SVG plot (and, beside
	// it, the same figures as a Markdown table).
	Plot string
	// Rounds is how many times the compare preset measures each server,
	// in turns (imhub, Centrifugo, the floor, then again): figures are
	// the medians, ratios the median of each round's. The wait preset
	// measures each side this many times, in turns.
	Rounds int
	// replica gives the Redis that -start starts a replica, synced
	// before the run.
	replica bool
	// hubArgs are more flags for the hub that -start starts.
	hubArgs []string
}

// The servers hubbench can measure.
const (
	targetHub        = "imhub"
	targetCentrifugo = "centrifugo"
	targetFloor      = "floor"
)

// frameBytes is the floor's frame size: the hub's event frame for a
// message text of -payload bytes is about this much larger than the text
// (the envelope, the normalized event's fields, the WebSocket header).
func (c Config) frameBytes() int {
	if c.FrameBytes > 0 {
		return c.FrameBytes
	}
	return c.Payload + 401
}

func defaultConfig() Config {
	return Config{
		Secret:        "hubbench-secret-hubbench-secret-hubbench",
		App:           "1400000000",
		CallbackToken: "hubbench-callback-token",
		Conns:         1000,
		Channels:      10,
		Rate:          50,
		Publishers:    8,
		Duration:      10 * time.Second,
		Payload:       200,
		Sources:       1,
		Rounds:        1,
		Probes:        1000,
		drainLimit:    2 * time.Minute,
		Target:        targetHub,
	}
}

// presets are the named scenarios; each is reproducible from one command.
var presets = map[string]func(*Config){
	// 10,000 connections over 100 channels, 200 callbacks/s: 20,000
	// deliveries/s.
	"fanout": func(c *Config) { c.Conns, c.Channels, c.Rate, c.Duration = 10000, 100, 200, 30*time.Second },
	// One channel, 10,000 subscribers.
	"broadcast": func(c *Config) { c.Conns, c.Channels, c.Rate, c.Duration = 10000, 1, 2, 30*time.Second },
	// Each connection on its own user channel plus one group.
	"many-channels": func(c *Config) {
		c.Conns, c.Channels, c.UserChannels, c.Rate, c.Duration = 10000, 100, true, 400, 30*time.Second
	},
	// Callbacks/s the endpoint sustains, no subscribers.
	"ingest": func(c *Config) { c.Conns, c.Channels, c.Rate, c.Publishers, c.Duration = 0, 100, 0, 64, 20*time.Second },
	// What forwarding costs: ingest with forwarding off, then on, then
	// Before* callbacks timed through the hub and straight to the backend.
	"forward": func(c *Config) { c.Conns, c.Channels, c.Rate, c.Publishers, c.Duration = 0, 100, 0, 64, 20*time.Second },
	// What waiting for a replica costs: ingest on a Redis with a replica,
	// with -redis-wait-replicas 0 and auto, in turns, -rounds times
	// (wait.go).
	"wait": func(c *Config) {
		c.Start, c.Redis, c.Conns, c.Channels, c.Rate, c.Publishers, c.Duration, c.Rounds = true, true, 0, 100, 0, 64, 10*time.Second, 3
	},
	// RSS per idle, subscribed connection.
	"idle": func(c *Config) { c.Conns, c.Channels, c.Rate, c.Duration = 10000, 100, 0, 10*time.Second },
	// Raise the rate until loss or p99 over 1s; the last good rate. With
	// more senders than the others: under this load a callback waits
	// longer for the busy hub, and eight senders could not keep the rate
	// though the hub kept up (an IM backend sends from many servers).
	// Two hubs and Redis under mixed traffic for an hour (-duration),
	// Redis restarted on the way; fails if a resource keeps growing or a
	// steady client misses an event. `make soak`, SOAK=10m for less.
	"soak": func(c *Config) {
		c.Start, c.Redis, c.Conns, c.Channels, c.UserChannels, c.Rate, c.Publishers, c.Duration =
			true, true, 100, 20, true, 20, 4, time.Hour
	},
	"max": func(c *Config) {
		c.Conns, c.Channels, c.Rate, c.Publishers, c.Duration = 10000, 100, 200, 32, 10*time.Second
	},
	// The fanout load against the floor: a bare program inside hubbench
	// that writes a prepared frame of the hub's size to each subscriber,
	// one write(2) per delivery, and nothing else (floor.go).
	"floor": func(c *Config) {
		c.Target, c.Start, c.Conns, c.Channels, c.Rate, c.Duration = targetFloor, true, 10000, 100, 200, 30*time.Second
	},
	// imhub, Centrifugo and the floor in turns, the same load on each, and
	// their ratios (compare.go): `make bench-compare`.
	"compare": func(c *Config) {
		c.Start, c.Redis, c.Conns, c.Channels, c.Rate, c.Duration = true, true, 10000, 100, 200, 30*time.Second
	},
	// CPU per delivery and p99 as connections and subscribers per channel
	// grow (scaling.go), written as a table and an SVG plot to -plot.
	"scaling": func(c *Config) {
		c.Start, c.Redis, c.Duration = true, true, 20*time.Second
	},
}

func presetNames() string {
	var names []string
	for n := range presets {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func (c Config) idle() bool { return c.Preset == "idle" }

func (c Config) validate() error {
	switch {
	case c.Hub == "" && !c.Start:
		return errors.New("give -hub URL of a running hub, or -start")
	case c.Hub != "" && c.Start:
		return errors.New("-hub and -start exclude each other")
	case c.Conns < 0, c.Channels < 0, c.Rate < 0, c.Payload < 0:
		return errors.New("sizes and rates must not be negative")
	case c.Conns > 0 && c.Channels == 0 && !c.UserChannels:
		return errors.New("connections need -channels or -user-channels")
	case (c.Forward || c.Preset == "forward") && !c.Start:
		return errors.New("forwarding needs -start: the hub is started with -forward to a backend in hubbench")
	case c.Probes < 1:
		return errors.New("-probes must be at least 1")
	case c.Publishers < 1:
		return errors.New("-publishers must be at least 1")
	case c.Sources < 1 || c.Sources > 250:
		return errors.New("-sources must be between 1 and 250")
	case c.Preset == "soak" && (c.Duration < 2*time.Minute || c.Duration > 24*time.Hour):
		return errors.New("-duration of a soak must be between 2m and 24h")
	case c.Preset == "soak" && (!c.Start || !c.Redis):
		return errors.New("a soak starts its own Redis and hubs: do not give -hub")
	case c.Preset != "soak" && (c.Duration <= 0 || c.Duration > time.Hour):
		return errors.New("-duration must be between 0 and 1h")
	case c.Conns > 28000*c.Sources:
		return errors.New("more connections than the source addresses have ports: raise -sources")
	case c.Target != targetHub && c.Target != targetCentrifugo && c.Target != targetFloor:
		return errors.New("-target must be imhub, centrifugo or floor")
	case c.Target == targetFloor && !c.Start:
		return errors.New("the floor runs inside hubbench: give -start")
	case c.Target == targetFloor && (c.Forward || c.UserChannels):
		return errors.New("the floor has group channels only: no -forward, no -user-channels")
	case c.Target == targetCentrifugo && (c.Forward || c.Preset == "forward"):
		return errors.New("forwarding is the hub's: not with -target centrifugo")
	case c.Target == targetCentrifugo && c.Start && !c.Redis:
		return errors.New("Centrifugo is measured with its Redis engine: give -redis")
	case c.Preset == "wait" && (!c.Start || !c.Redis || c.Target != targetHub):
		return errors.New("wait starts each hub with a Redis and a replica of its own: give -start -redis, no -target")
	case c.Preset == "compare" && (!c.Start || !c.Redis):
		return errors.New("compare starts each server with a Redis of its own: give -start -redis")
	case c.Rounds < 1 || c.Rounds > 10:
		return errors.New("-rounds must be between 1 and 10")
	case c.Preset == "scaling" && c.Plot == "":
		return errors.New("scaling writes a plot: give -plot FILE.svg")
	}
	return nil
}
