package broker_test

import (
	"testing"

	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/broker/brokertest"
)

func TestMemoryConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, cfg broker.Config) broker.Broker {
		b := broker.NewMemory(cfg)
		t.Cleanup(func() { _ = b.Close() })
		return b
	}, func(t *testing.T, b broker.Broker) []string {
		return broker.ChannelsForTest(b.(*broker.Memory))
	})
}
