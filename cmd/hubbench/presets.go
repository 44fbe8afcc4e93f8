package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// preset is a named scenario, each reproducible from one command: the
// flag defaults it sets (flags given still win), what it needs of the
// rest of the configuration, and how it runs and reports. A new scenario
// is one more value in presets.
type preset struct {
	name string
	// defaults sets the preset's defaults on a Config of defaultConfig.
	defaults func(*Config)
	// run starts what the preset measures, measures it within a time
	// limit of its own, and prints its report to out; progress is for
	// people watching.
	run func(ctx context.Context, cfg Config, out, progress io.Writer) error
	// check, if set, refuses a configuration the preset cannot run,
	// after the checks every run passes.
	check func(Config) error
	// idle is a preset that holds its connections and publishes nothing.
	idle bool
	// forwards is a preset that measures forwarding: it needs a hub it
	// starts itself, with -forward to a backend inside hubbench.
	forwards bool
}

// custom is the run without -preset: the flags alone say what it is. Its
// name is empty; the report calls it custom.
var custom = preset{defaults: func(*Config) {}, run: runMeasured}

// presets are the named scenarios (BENCHMARKS.md).
var presets = []preset{
	// 10,000 connections over 100 channels, 200 callbacks/s: 20,000
	// deliveries/s.
	{name: "fanout", run: runMeasured, defaults: func(c *Config) {
		c.Conns, c.Channels, c.Rate, c.Duration = 10000, 100, 200, 30*time.Second
	}},
	// One channel, 10,000 subscribers.
	{name: "broadcast", run: runMeasured, defaults: func(c *Config) {
		c.Conns, c.Channels, c.Rate, c.Duration = 10000, 1, 2, 30*time.Second
	}},
	// Each connection on its own user channel plus one group.
	{name: "many-channels", run: runMeasured, defaults: func(c *Config) {
		c.Conns, c.Channels, c.UserChannels, c.Rate, c.Duration = 10000, 100, true, 400, 30*time.Second
	}},
	// Callbacks/s the endpoint sustains, no subscribers.
	{name: "ingest", run: runMeasured, defaults: func(c *Config) {
		c.Conns, c.Channels, c.Rate, c.Publishers, c.Duration = 0, 100, 0, 64, 20*time.Second
	}},
	// What forwarding costs: ingest with forwarding off, then on, then
	// Before* callbacks timed through the hub and straight to the backend
	// (forward.go).
	{name: "forward", run: runForward, forwards: true, defaults: func(c *Config) {
		c.Conns, c.Channels, c.Rate, c.Publishers, c.Duration = 0, 100, 0, 64, 20*time.Second
	}},
	// RSS per idle, subscribed connection.
	{name: "idle", run: runMeasured, idle: true, defaults: func(c *Config) {
		c.Conns, c.Channels, c.Rate, c.Duration = 10000, 100, 0, 10*time.Second
	}},
	// Raise the rate until loss or p99 over 1s; the last good rate. With
	// more senders than the others: under this load a callback waits
	// longer for the busy hub, and eight senders could not keep the rate
	// though the hub kept up (an IM backend sends from many servers).
	{name: "max", run: runMax, defaults: func(c *Config) {
		c.Conns, c.Channels, c.Rate, c.Publishers, c.Duration = 10000, 100, 200, 32, 10*time.Second
	}},
	// The fanout load against the floor: a bare program inside hubbench
	// that writes a prepared frame of the hub's size to each subscriber,
	// one write(2) per delivery, and nothing else (floor.go).
	{name: "floor", run: runMeasured, defaults: func(c *Config) {
		c.Target, c.Start, c.Conns, c.Channels, c.Rate, c.Duration = targetFloor, true, 10000, 100, 200, 30*time.Second
	}},
	// imhub, Centrifugo and the floor in turns, the same load on each, and
	// their ratios (compare.go): `make bench-compare`.
	{name: "compare", run: runCompare, check: checkCompare, defaults: func(c *Config) {
		c.Start, c.Redis, c.Conns, c.Channels, c.Rate, c.Duration = true, true, 10000, 100, 200, 30*time.Second
	}},
	// What waiting for a replica costs: ingest on a Redis with a replica,
	// -redis-wait-replicas 0 and auto in turns, -rounds times each
	// (wait.go).
	{name: "wait", run: runWait, check: checkWait, defaults: func(c *Config) {
		c.Start, c.Redis, c.Conns, c.Channels, c.Rate, c.Publishers, c.Duration, c.Rounds = true, true, 0, 100, 0, 64, 10*time.Second, 3
	}},
	// One busy channel: every client in it, at message rates stepped past
	// the knees; imhub, Centrifugo and the floor in turns, with the spread
	// of per-client latency (room.go): `make bench-room`.
	{name: "room", run: runRoom, check: checkRoom, defaults: func(c *Config) {
		c.Start, c.Redis, c.Conns, c.Channels, c.Duration = true, true, 2000, 1, 10*time.Second
	}},
	// CPU per delivery and p99 as connections and subscribers per channel
	// grow (scaling.go), written as a table and an SVG plot to -plot.
	{name: "scaling", run: runScaling, check: checkScaling, defaults: func(c *Config) {
		c.Start, c.Redis, c.Duration = true, true, 20*time.Second
	}},
}

// lookupPreset is the preset named name; the empty name is custom.
func lookupPreset(name string) (preset, error) {
	if name == "" {
		return custom, nil
	}
	i := slices.IndexFunc(presets, func(p preset) bool { return p.name == name })
	if i < 0 {
		return preset{}, fmt.Errorf("unknown preset %q; presets: %s", name, presetNames())
	}
	return presets[i], nil
}

// configFor is the default configuration of the preset named name.
func configFor(name string) (Config, error) {
	p, err := lookupPreset(name)
	if err != nil {
		return Config{}, err
	}
	cfg := defaultConfig()
	p.defaults(&cfg)
	cfg.Preset = p
	return cfg, nil
}

// presetNames lists the presets' names in order, for messages.
func presetNames() string {
	var names []string
	for _, p := range presets {
		names = append(names, p.name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// checkCompare refuses a compare that would not start each server with a
// Redis of its own.
func checkCompare(c Config) error {
	if !c.Start || !c.Redis {
		return errors.New("compare starts each server with a Redis of its own: give -start -redis")
	}
	return nil
}

// checkScaling refuses a scaling run with nowhere to write its plot.
func checkScaling(c Config) error {
	if c.Plot == "" {
		return errors.New("scaling writes a plot: give -plot FILE.svg")
	}
	return nil
}

// runMeasured is the run of most presets: one environment, one
// measurement over -duration, and the Result's table and JSON line.
func runMeasured(ctx context.Context, cfg Config, out, progress io.Writer) error {
	return runSingle(ctx, cfg, measure, cfg.Duration+cfg.budget(), out, progress)
}

// runMax is runMeasured with the rate raised step by step (findMax): up
// to ten more durations.
func runMax(ctx context.Context, cfg Config, out, progress io.Writer) error {
	return runSingle(ctx, cfg, findMax, cfg.Duration+cfg.budget()+10*cfg.Duration, out, progress)
}

// runSingle measures one environment with take, the whole bounded by
// limit, and prints the result, also that of a run that failed after
// measuring.
func runSingle(ctx context.Context, cfg Config, take measurer, limit time.Duration, out, progress io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	res, err := runOnce(ctx, cfg, take, progress, nil)
	if res != nil {
		res.print(out, cfg.JSONOnly)
	}
	return err
}
