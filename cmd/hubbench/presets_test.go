package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mustPreset is the preset named name, for tests that name one.
func mustPreset(name string) preset {
	p, err := lookupPreset(name)
	if err != nil {
		panic(err)
	}
	return p
}

// withPreset gives c the defaults of the preset named name and makes it
// c's preset, as -preset name does.
func withPreset(c *Config, name string) {
	p := mustPreset(name)
	p.defaults(c)
	c.Preset = p
}

// A preset is looked up by its name; a name it does not know is refused
// with every name it knows.
func TestLookupPreset(t *testing.T) {
	known := []string{"broadcast", "compare", "fanout", "floor", "forward", "idle", "ingest", "many-channels", "max", "room", "scaling", "wait"}
	for _, name := range known {
		t.Run(name, func(t *testing.T) {
			p, err := lookupPreset(name)
			require.NoError(t, err)
			assert.Equal(t, name, p.name)
			assert.NotNil(t, p.run, "it runs")
			assert.NotNil(t, p.defaults, "it has defaults")
		})
	}
	t.Run("none", func(t *testing.T) {
		p, err := lookupPreset("")
		require.NoError(t, err)
		assert.Empty(t, p.name, "custom: the flags alone")
		assert.NotNil(t, p.run)
	})
	for _, name := range []string{"nope", "Fanout", "soak", " fanout"} {
		t.Run("unknown "+name, func(t *testing.T) {
			_, err := lookupPreset(name)
			require.Error(t, err)
			assert.Contains(t, err.Error(), `unknown preset "`+name+`"`)
			assert.Contains(t, err.Error(), "presets: "+strings.Join(known, ", "), "every known one, in order")
		})
	}
	assert.Len(t, presets, len(known), "no preset untested, none named twice")
}

// Each preset's defaults are the load README.md and BENCHMARKS.md give
// for it; the other settings are the defaults of every run.
func TestPresetDefaults(t *testing.T) {
	// knobs is what a preset may set.
	type knobs struct {
		Conns, Channels int
		UserChannels    bool
		Rate            float64
		Publishers      int
		Duration        time.Duration
		Start, Redis    bool
		Target          string
	}
	of := func(c Config) knobs {
		return knobs{c.Conns, c.Channels, c.UserChannels, c.Rate, c.Publishers, c.Duration, c.Start, c.Redis, c.Target}
	}
	tests := []struct {
		name string
		want knobs
	}{
		// "10,000 conns, 100 channels, 200 cb/s"
		{"fanout", knobs{10000, 100, false, 200, 8, 30 * time.Second, false, false, targetHub}},
		// "10,000 conns on 1 channel, 2 cb/s"
		{"broadcast", knobs{10000, 1, false, 2, 8, 30 * time.Second, false, false, targetHub}},
		// "10,000 conns, user channel + 1 group each, 400 cb/s"
		{"many-channels", knobs{10000, 100, true, 400, 8, 30 * time.Second, false, false, targetHub}},
		// "64 senders, no subscribers", "15.3 s CPU over 20 s"
		{"ingest", knobs{0, 100, false, 0, 64, 20 * time.Second, false, false, targetHub}},
		// "64 senders post … as fast as the hub accepts them, for 20 s, no subscribers"
		{"forward", knobs{0, 100, false, 0, 64, 20 * time.Second, false, false, targetHub}},
		// "10,000 idle subscribed conns", "held 10 s"
		{"idle", knobs{10000, 100, false, 0, 8, 10 * time.Second, false, false, targetHub}},
		// "10,000 conns, 100 channels", "10 s each", "32 senders"
		{"max", knobs{10000, 100, false, 200, 32, 10 * time.Second, false, false, targetHub}},
		// the fanout load against the floor, which hubbench starts
		{"floor", knobs{10000, 100, false, 200, 8, 30 * time.Second, true, false, targetFloor}},
		// "10,000 clients over 100 channels: load, 200 messages/s … for 30 s", each with a Redis of its own
		{"compare", knobs{10000, 100, false, 200, 8, 30 * time.Second, true, true, targetHub}},
		// "N clients in one channel", "2,000 clients", each server started with a Redis of its own
		{"room", knobs{2000, 1, false, 50, 8, 10 * time.Second, true, true, targetHub}},
		// "Each point is a fresh hub with Redis (-redis), 20 s of publishing"
		{"scaling", knobs{1000, 10, false, 50, 8, 20 * time.Second, true, true, targetHub}},
		// "64 senders, as fast as answered", "10 s", each hub with a Redis (and a replica) of its own
		{"wait", knobs{0, 100, false, 0, 64, 10 * time.Second, true, true, targetHub}},
		// no preset: the flags' own defaults
		{"", knobs{1000, 10, false, 50, 8, 10 * time.Second, false, false, targetHub}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := configFor(tt.name)
			require.NoError(t, err)
			assert.Equal(t, tt.want, of(cfg))
			assert.Equal(t, tt.name, cfg.Preset.name)
			// "three rounds each"; the others measure once.
			assert.Equal(t, map[bool]int{true: 3, false: 1}[tt.name == "wait"], cfg.Rounds)
			// Nothing else moves.
			rest, base := cfg, defaultConfig()
			rest.Conns, rest.Channels, rest.UserChannels, rest.Rate, rest.Publishers, rest.Duration = base.Conns, base.Channels, base.UserChannels, base.Rate, base.Publishers, base.Duration
			rest.Start, rest.Redis, rest.Target, rest.Rounds, rest.Preset, base.Preset = base.Start, base.Redis, base.Target, base.Rounds, preset{}, preset{}
			assert.Equal(t, base, rest)
		})
	}
	assert.True(t, mustPreset("idle").idle, "idle publishes nothing")
	assert.True(t, mustPreset("forward").forwards, "forward measures forwarding")
	for _, p := range presets {
		assert.Equal(t, p.name == "idle", p.idle, p.name)
		assert.Equal(t, p.name == "forward", p.forwards, p.name)
	}
}

// The command line: the preset's defaults, then the flags given, which
// win; a preset it does not know, or two, are refused with why.
func TestParseArgs(t *testing.T) {
	var usage bytes.Buffer
	cfg, prof, err := parseArgs([]string{"-preset", "fanout", "-start", "-redis", "-conns", "200", "-duration", "3s", "-cpuprofile", "p.out"}, &usage)
	require.NoError(t, err)
	assert.Equal(t, "fanout", cfg.Preset.name)
	assert.Equal(t, 200, cfg.Conns, "the flag wins")
	assert.Equal(t, 3*time.Second, cfg.Duration)
	assert.Equal(t, 100, cfg.Channels, "the preset's")
	assert.Equal(t, 200.0, cfg.Rate)
	assert.True(t, cfg.Start && cfg.Redis)
	assert.Equal(t, "p.out", prof)

	cfg, _, err = parseArgs([]string{"--preset=compare", "-redis=false"}, &usage)
	require.NoError(t, err)
	assert.Equal(t, "compare", cfg.Preset.name)
	assert.True(t, cfg.Start)
	assert.False(t, cfg.Redis, "the flag wins over the preset's default")

	cfg, _, err = parseArgs([]string{"-hub", "http://127.0.0.1:8080", "-rate", "5"}, &usage)
	require.NoError(t, err)
	assert.Equal(t, "", cfg.Preset.name, "custom")
	assert.Equal(t, 5.0, cfg.Rate)

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-preset", "nope", "-start"}, `hubbench: unknown preset "nope"; presets: broadcast, compare,`},
		{[]string{"-preset", "soak", "-duration", "10m"}, `unknown preset "soak"`},
		{[]string{"-preset", "fanout", "-preset", "idle"}, `-preset given twice, "fanout" and "idle"`},
		{[]string{"-preset", "fanout", "-soak-small"}, "flag provided but not defined: -soak-small"},
	} {
		usage.Reset()
		_, _, err := parseArgs(tt.args, &usage)
		require.Error(t, err, tt.args)
		assert.Contains(t, usage.String(), tt.want, tt.args)
	}
}
