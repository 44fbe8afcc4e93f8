package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"

	"github.com/imhub/imhub/hub/broker"
)

// replicasFlag is -redis-wait-replicas: auto, or a number of replicas.
type replicasFlag struct{ n *int }

// String is the value; the zero replicasFlag, which the flag package makes
// to tell a default from none, shows "", so that hub -h shows the default
// auto.
func (f replicasFlag) String() string {
	switch {
	case f.n == nil:
		return ""
	case *f.n == broker.WaitAuto:
		return "auto"
	}
	return strconv.Itoa(*f.n)
}

func (f replicasFlag) Set(s string) error {
	if s == "auto" {
		*f.n = broker.WaitAuto
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return errors.New("want auto, 0 (off) or a number of replicas")
	}
	*f.n = n
	return nil
}

// waitFlags defines the flags that make publications wait for replicas.
func waitFlags(fs *flag.FlagSet, w *broker.WaitConfig) {
	fs.Var(replicasFlag{&w.Replicas}, "redis-wait-replicas", "acknowledge a callback, API publish or forward entry only once this many Redis replicas hold it (WAIT), "+
		"else keep it in the spool and retry: auto = 1 on a primary that has a replica online, none on one without; 0 = off; N = N replicas, whatever the primary has")
	fs.DurationVar(&w.Timeout, "redis-wait-timeout", w.Timeout, "how long a publication waits for -redis-wait-replicas before it is kept in the spool instead")
}

// validateWait checks the replica wait.
func (c *Config) validateWait() error {
	if c.RedisWait.Timeout <= 0 {
		return fmt.Errorf("-redis-wait-timeout must be greater than zero, such as 100ms, not %v", c.RedisWait.Timeout)
	}
	return nil
}
