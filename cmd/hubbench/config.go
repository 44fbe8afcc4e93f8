package main

import (
	"errors"
	"time"
)

// Config is one run.
type Config struct {
	// Preset is the named scenario the run is (presets.go); custom
	// without -preset.
	Preset        preset
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
	// the app's callbacks to it (docs/protocol.md#forwarding).
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
	// measures each of its two sides this many times, in turns.
	Rounds int
	// replica has -redis start a primary with a replica, synced before
	// the hub starts (the wait preset).
	replica bool
	// hubArgs are more flags for the hub that -start starts.
	hubArgs []string
	// ClientSpread has each client record its own latencies, for the
	// spread of their p99s (clientlat.go).
	ClientSpread bool
	// RoomSteps are the room preset's fleets and the message rates each
	// is measured at (room.go): "2000:10,25,50,100;10000:5,10".
	RoomSteps string
	// Targets are the servers the room preset measures, in turns.
	Targets string
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
		Preset:        custom,
		RoomSteps:     defaultRoomSteps,
		Targets:       targetHub + "," + targetCentrifugo + "," + targetFloor,
	}
}

// forwards is whether the run measures forwarding: the hub is started
// with -forward to a backend inside hubbench.
func (c Config) forwards() bool { return c.Forward || c.Preset.forwards }

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
	case c.forwards() && !c.Start:
		return errors.New("forwarding needs -start: the hub is started with -forward to a backend in hubbench")
	case c.Probes < 1:
		return errors.New("-probes must be at least 1")
	case c.Publishers < 1:
		return errors.New("-publishers must be at least 1")
	case c.Sources < 1 || c.Sources > 250:
		return errors.New("-sources must be between 1 and 250")
	case c.Duration <= 0 || c.Duration > time.Hour:
		return errors.New("-duration must be between 0 and 1h")
	case c.Conns > 28000*c.Sources:
		return errors.New("more connections than the source addresses have ports: raise -sources")
	case c.Target != targetHub && c.Target != targetCentrifugo && c.Target != targetFloor:
		return errors.New("-target must be imhub, centrifugo or floor")
	case c.Target == targetFloor && !c.Start:
		return errors.New("the floor runs inside hubbench: give -start")
	case c.Target == targetFloor && (c.Forward || c.UserChannels):
		return errors.New("the floor has group channels only: no -forward, no -user-channels")
	case c.Target == targetCentrifugo && c.forwards():
		return errors.New("forwarding is the hub's: not with -target centrifugo")
	case c.Target == targetCentrifugo && c.Start && !c.Redis:
		return errors.New("Centrifugo is measured with its Redis engine: give -redis")
	case c.Rounds < 1 || c.Rounds > 10:
		return errors.New("-rounds must be between 1 and 10")
	}
	if c.Preset.check != nil {
		return c.Preset.check(c)
	}
	return nil
}
