package broker

import (
	"strconv"
	"strings"
	"sync"
)

// The data set id (see history.lua) is kept once per Redis Cluster slot, so
// that a script can read it with the keys of any channel: a script's keys
// must share one slot. On one server there is a single id.

// runKey names the key that holds the data set id for the channel whose
// keys start with sk.
func (r *Redis) runKey(sk string) string {
	if r.cluster == nil {
		return r.cfg.Prefix + ":run"
	}
	return r.cfg.Prefix + ":{" + slotTags()[keySlot(sk)] + "}:run"
}

// isRunKey reports whether k is a key runKey names.
func (r *Redis) isRunKey(k string) bool {
	if k == r.cfg.Prefix+":run" {
		return true
	}
	tag, ok := strings.CutPrefix(k, r.cfg.Prefix+":{")
	tag, ok2 := strings.CutSuffix(tag, "}:run")
	return ok && ok2 && !strings.ContainsAny(tag, ":{}")
}

const clusterSlots = 16384

// keySlot is the Redis Cluster slot of key: the CRC16 of what hashTag
// says Redis hashes, modulo the slot count.
func keySlot(key string) int {
	return int(crc16(hashTag(key)) & (clusterSlots - 1))
}

// hashTag is the part of key that Redis Cluster hashes: what lies between
// its first '{' and the first '}' after that one, unless that is empty or
// there is no such '}'; all of key otherwise.
func hashTag(key string) string {
	_, open, ok := strings.Cut(key, "{")
	if !ok {
		return key
	}
	if tag, _, ok := strings.Cut(open, "}"); ok && tag != "" {
		return tag
	}
	return key
}

// crc16 is CRC-16/XMODEM, as Redis Cluster uses.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slotTags returns, for each slot, a short hash tag in that slot. Tags
// have no ':', so they never collide with a channel's, which always has
// one.
var slotTags = sync.OnceValue(func() *[clusterSlots]string {
	var tags [clusterSlots]string
	for i, left := 0, clusterSlots; left > 0; i++ {
		tag := strconv.FormatInt(int64(i), 36)
		if s := keySlot(tag); tags[s] == "" {
			tags[s] = tag
			left--
		}
	}
	return &tags
})
