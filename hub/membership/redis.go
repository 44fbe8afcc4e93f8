package membership

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/hub/imapi"
)

// redisStore keeps the answers in Redis for every node. Each group is one
// hash, its user entries and its own facts in fields, and one set, the
// users waiting for the group's next ask; both in the hash tag of the
// group's channel, so that every command and script of a group, however
// many users it names, is one slot of a Redis Cluster.
//
// Fields of the hash ("m:" the group's, "u:" a user's, so no user id can
// be taken for a fact):
//
//	m:clock     the group's latest stamp, microseconds of Redis's clock or
//	            one past the last, whichever is later (so stamps keep
//	            rising when the hash expired and was made anew)
//	m:reset     the stamp of the last disbanding
//	m:gone      unix ms until which the disbanded group has no members
//	m:av        unix ms until which every user is admitted (10007)
//	m:failed    unix ms until which the IM is not asked again
//	m:lease     the token of the claim a node holds; m:leaseend its end
//	m:pruned    the field count after the last sweep of lapsed entries
//	u:<user>    "<role> <expires unix ms> <stamp> <c|a>", c when learnt
//	            from a callback, a when asked
//
// Redis 7.0 cannot expire a field, so the hash's own expiry is kept at
// the latest expiry written plus the grace, and lapsed entries are swept
// from it whenever it has doubled since the last sweep.
type redisStore struct {
	client redis.UniversalClient
	prefix string
	grace  time.Duration
}

func (s *redisStore) hashKey(g groupID) string {
	return s.prefix + ":members:{" + g.app + ":group:" + g.group + "}"
}

func (s *redisStore) queueKey(g groupID) string {
	return s.prefix + ":asking:{" + g.app + ":group:" + g.group + "}"
}

// luaCommon are the functions every script shares.
//
// stamp gives the group its next stamp; keep extends the hash's life to
// at least until (unix ms); sweep drops the entries lapsed by now (unix
// ms) past grace (ms) once the hash has doubled since its last sweep.
const luaCommon = `
local function stamp(k)
  local t = redis.call('TIME')
  local s = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local c = tonumber(redis.call('HGET', k, 'm:clock') or '0')
  if c + 1 > s then s = c + 1 end
  s = string.format('%.0f', s)
  redis.call('HSET', k, 'm:clock', s)
  return s
end
local function keep(k, untilms)
  if redis.call('PEXPIRETIME', k) < untilms then
    redis.call('PEXPIREAT', k, string.format('%.0f', untilms))
  end
end
local function sweep(k, now, grace)
  local n = redis.call('HLEN', k)
  local last = tonumber(redis.call('HGET', k, 'm:pruned') or '0')
  if n < 2 * math.max(last, 64) then return end
  local all = redis.call('HGETALL', k)
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'u:' then
      local _, _, exp = string.find(all[i + 1], '^%S+ (%d+) ')
      if exp and tonumber(exp) + grace < now then redis.call('HDEL', k, all[i]) end
    end
  end
  redis.call('HSET', k, 'm:pruned', redis.call('HLEN', k))
end
`

// learnScript writes users' entries from a callback, with the group's
// next stamp.
//
// KEYS[1] the group's hash. ARGV[1] the role; ARGV[2] its expiry (unix
// ms); ARGV[3] the hash kept at least until (unix ms); ARGV[4] "1" when
// the users joined (the group exists again: a disbanding is over);
// ARGV[5] now (unix ms); ARGV[6] the grace (ms); ARGV[7] "1" when the
// group is an audio-video one until ARGV[2]; ARGV[8..] the users.
var learnScript = redis.NewScript(luaCommon + `
local k = KEYS[1]
local s = stamp(k)
local v = ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. s .. ' c'
for i = 8, #ARGV do redis.call('HSET', k, 'u:' .. ARGV[i], v) end
if ARGV[4] == '1' then redis.call('HDEL', k, 'm:gone') end
if ARGV[7] == '1' then redis.call('HSET', k, 'm:av', ARGV[2]) end
keep(k, tonumber(ARGV[3]))
sweep(k, tonumber(ARGV[5]), tonumber(ARGV[6]))
return s
`)

// destroyScript forgets everything about a disbanded group and keeps that
// it was disbanded: no member until ARGV[1], and nothing asked before it
// recorded after it.
//
// KEYS[1] the group's hash, KEYS[2] its queue. ARGV[1] no members until
// (unix ms); ARGV[2] the hash kept until (unix ms).
var destroyScript = redis.NewScript(luaCommon + `
local s = stamp(KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'm:clock', s, 'm:reset', s, 'm:gone', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return s
`)

// claimScript queues users for the group's next ask and gives the caller
// the ask unless another holds it or the IM is not to be asked yet. A user
// answered meanwhile (by the group's facts or an entry not expired) is
// neither queued nor taken: another node's ask may have answered between
// the caller's read and its claim.
// Returns {0} (another node asks), {2} (not now), or {1, clock, users}:
// the caller asks about users, at most ARGV[4] of those queued.
//
// While another node asks, users are queued only when ARGV[5] is "1": a
// caller's first claim. Queued again on a later one, a user the asking
// node took meanwhile would be asked about twice.
//
// KEYS[1] the group's hash, KEYS[2] its queue. ARGV[1] now (unix ms);
// ARGV[2] the lease's end (unix ms); ARGV[3] the claim's token; ARGV[4]
// the most users to take; ARGV[5] "1" to queue users while another
// asks; ARGV[6..] the users.
var claimScript = redis.NewScript(luaCommon + `
local k, q = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local function after(field) return tonumber(redis.call('HGET', k, field) or '0') > now end
-- answered: what the group's facts or the user's entry decide now.
local decided = after('m:gone') or after('m:av')
local function answered(u)
  if decided then return true end
  local e = redis.call('HGET', k, 'u:' .. u)
  if not e then return false end
  local _, _, exp = string.find(e, '^%S+ (%d+) ')
  return exp ~= nil and tonumber(exp) > now
end
local leased = after('m:leaseend')
if ARGV[5] == '1' or not leased then
  local queued = false
  for i = 6, #ARGV do
    if not answered(ARGV[i]) then
      redis.call('SADD', q, ARGV[i])
      queued = true
    end
  end
  if queued then redis.call('PEXPIREAT', q, ARGV[2]) end
end
if leased then return {0} end
if after('m:failed') then return {2} end
local users = {}
for _, u in ipairs(redis.call('SPOP', q, ARGV[4])) do
  if not answered(u) then users[#users + 1] = u end
end
redis.call('HSET', k, 'm:lease', ARGV[3], 'm:leaseend', ARGV[2])
keep(k, tonumber(ARGV[2]))
return {1, redis.call('HGET', k, 'm:clock') or '0', users}
`)

// recordScript writes what the IM answered for a claim, gives the claim
// back, and reads the group's facts and some users' entries as read does.
// Nothing is written when the group was disbanded after the claim; an
// entry is not replaced when it was written after the claim, or learnt
// from a callback and not yet expired.
//
// KEYS[1] the group's hash. ARGV[1] the claim's stamp; ARGV[2] its token;
// ARGV[3] now (unix ms); ARGV[4] the grace (ms); ARGV[5] every user
// admitted until (unix ms), "0" for no such fact; ARGV[6] the IM not
// asked until (unix ms), or "0"; ARGV[7] the hash kept at least until
// (unix ms); ARGV[8] n, the users answered; then n triples user, role,
// expiry (unix ms); then the users to read.
var recordScript = redis.NewScript(luaCommon + `
local k = KEYS[1]
local asked = tonumber(ARGV[1])
local now = tonumber(ARGV[3])
local n = tonumber(ARGV[8])
if tonumber(redis.call('HGET', k, 'm:reset') or '0') <= asked then
  if ARGV[5] ~= '0' then redis.call('HSET', k, 'm:av', ARGV[5]) end
  if ARGV[6] ~= '0' then redis.call('HSET', k, 'm:failed', ARGV[6]) end
  for i = 0, n - 1 do
    local f = 'u:' .. ARGV[9 + 3 * i]
    local cur = redis.call('HGET', k, f)
    local put = true
    if cur then
      local _, _, exp, st, src = string.find(cur, '^%S+ (%d+) (%d+) (%a)$')
      if st and (tonumber(st) > asked or (src == 'c' and tonumber(exp) > now)) then put = false end
    end
    if put then
      redis.call('HSET', k, f, ARGV[10 + 3 * i] .. ' ' .. ARGV[11 + 3 * i] .. ' ' .. ARGV[1] .. ' a')
    end
  end
  if ARGV[5] ~= '0' or ARGV[6] ~= '0' or n > 0 then keep(k, tonumber(ARGV[7])) end
end
if redis.call('HGET', k, 'm:lease') == ARGV[2] then redis.call('HDEL', k, 'm:lease', 'm:leaseend') end
sweep(k, now, tonumber(ARGV[4]))
local fields = {'m:clock', 'm:reset', 'm:gone', 'm:av', 'm:failed', 'm:leaseend'}
for i = 9 + 3 * n, #ARGV do fields[#fields + 1] = 'u:' .. ARGV[i] end
return redis.call('HMGET', k, unpack(fields))
`)

// factFields are the group's facts read with its users, in the order
// parseKept takes them.
var factFields = []string{"m:clock", "m:reset", "m:gone", "m:av", "m:failed", "m:leaseend"}

// learnChunk bounds the users one script call writes, well inside Lua's
// limit on a call's arguments.
const learnChunk = 1000

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (s *redisStore) read(ctx context.Context, g groupID, users []string, now time.Time) (kept, error) {
	fields := make([]string, 0, len(factFields)+len(users))
	fields = append(fields, factFields...)
	for _, u := range users {
		fields = append(fields, "u:"+u)
	}
	vals, err := s.client.HMGet(ctx, s.hashKey(g), fields...).Result()
	if err != nil {
		return kept{}, fmt.Errorf("read group %s: %w", g.group, err)
	}
	return parseKept(vals, users, now)
}

func (s *redisStore) learn(ctx context.Context, g groupID, e entry, joined, av bool, users []string, now time.Time) error {
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	// An audio-video group is told once, with the first chunk, or alone.
	for first := true; first || len(users) > 0; first = false {
		n := min(len(users), learnChunk)
		args := []any{string(e.role), ms(e.expires), ms(e.expires.Add(s.grace)), flag(joined), ms(now), s.grace.Milliseconds(), flag(av && first)}
		for _, u := range users[:n] {
			args = append(args, u)
		}
		if err := learnScript.Run(ctx, s.client, []string{s.hashKey(g)}, args...).Err(); err != nil {
			return fmt.Errorf("keep %s of group %s: %w", e.role, g.group, err)
		}
		users = users[n:]
	}
	return nil
}

func (s *redisStore) destroy(ctx context.Context, g groupID, until, now time.Time) error {
	err := destroyScript.Run(ctx, s.client, []string{s.hashKey(g), s.queueKey(g)}, ms(until), ms(until.Add(s.grace))).Err()
	if err != nil {
		return fmt.Errorf("forget disbanded group %s: %w", g.group, err)
	}
	return nil
}

func (s *redisStore) claim(ctx context.Context, g groupID, users []string, first bool, now, leaseEnd time.Time, token string) (claim, error) {
	queue := "0"
	if first {
		queue = "1"
	}
	args := []any{ms(now), ms(leaseEnd), token, maxTake, queue}
	for _, u := range users {
		args = append(args, u)
	}
	res, err := claimScript.Run(ctx, s.client, []string{s.hashKey(g), s.queueKey(g)}, args...).Slice()
	if err != nil {
		return claim{}, fmt.Errorf("claim the ask of group %s: %w", g.group, err)
	}
	bad := fmt.Errorf("claim the ask of group %s: an answer of %d items", g.group, len(res))
	if len(res) == 0 {
		return claim{}, bad
	}
	switch code, _ := res[0].(int64); code {
	case 0:
		return claim{}, nil
	case 2:
		return claim{stop: true}, nil
	case 1:
	default:
		return claim{}, bad
	}
	if len(res) != 3 {
		return claim{}, bad
	}
	clockStr, _ := res[1].(string)
	asked, err := strconv.ParseUint(clockStr, 10, 64)
	if err != nil {
		return claim{}, fmt.Errorf("claim the ask of group %s: clock %q: %w", g.group, clockStr, err)
	}
	list, _ := res[2].([]any)
	c := claim{lead: true, asked: asked, token: token, users: make([]string, 0, len(list))}
	for _, u := range list {
		if s, ok := u.(string); ok {
			c.users = append(c.users, s)
		}
	}
	return c, nil
}

func (s *redisStore) record(ctx context.Context, g groupID, c claim, a answer, users []string, now time.Time) (kept, error) {
	keepUntil := later(a.av, a.failed)
	for _, e := range a.users {
		keepUntil = later(keepUntil, e.expires)
	}
	zeroOr := func(t time.Time) string {
		if t.IsZero() {
			return "0"
		}
		return ms(t)
	}
	args := make([]any, 0, 8+3*len(a.users)+len(users))
	args = append(args, strconv.FormatUint(c.asked, 10), c.token, ms(now), s.grace.Milliseconds(),
		zeroOr(a.av), zeroOr(a.failed), ms(keepUntil.Add(s.grace)), len(a.users))
	for u, e := range a.users {
		args = append(args, u, string(e.role), ms(e.expires))
	}
	for _, u := range users {
		args = append(args, u)
	}
	vals, err := recordScript.Run(ctx, s.client, []string{s.hashKey(g)}, args...).Slice()
	if err != nil {
		return kept{}, fmt.Errorf("record the IM's answer for group %s: %w", g.group, err)
	}
	return parseKept(vals, users, now)
}

// parseKept reads the values of factFields and then of each user's field.
func parseKept(vals []any, users []string, now time.Time) (kept, error) {
	if len(vals) != len(factFields)+len(users) {
		return kept{}, fmt.Errorf("read %d values for %d fields", len(vals), len(factFields)+len(users))
	}
	str := func(i int) string { s, _ := vals[i].(string); return s }
	num := func(i int) (int64, error) {
		if str(i) == "" {
			return 0, nil
		}
		return strconv.ParseInt(str(i), 10, 64)
	}
	at := func(i int) (time.Time, error) {
		n, err := num(i)
		if err != nil || n == 0 {
			return time.Time{}, err
		}
		return time.UnixMilli(n), nil
	}
	var k kept
	var errs [6]error
	var clock, reset int64
	clock, errs[0] = num(0)
	reset, errs[1] = num(1)
	k.clock, k.reset = uint64(clock), uint64(reset)
	k.gone, errs[2] = at(2)
	k.av, errs[3] = at(3)
	k.failed, errs[4] = at(4)
	var leaseEnd time.Time
	leaseEnd, errs[5] = at(5)
	if err := errors.Join(errs[:]...); err != nil {
		return kept{}, fmt.Errorf("a group's facts: %w", err)
	}
	k.leased = now.Before(leaseEnd)
	for i, u := range users {
		v := str(len(factFields) + i)
		if v == "" {
			continue
		}
		e, err := parseEntry(v)
		if err != nil {
			return kept{}, fmt.Errorf("the entry of %s: %w", u, err)
		}
		k.put(u, e, len(users))
	}
	return k, nil
}

// parseEntry reads "<role> <expires unix ms> <stamp> <c|a>".
func parseEntry(v string) (entry, error) {
	f := strings.Fields(v)
	if len(f) != 4 || (f[3] != "c" && f[3] != "a") {
		return entry{}, fmt.Errorf("%q is not role, expiry, stamp and source", v)
	}
	exp, err1 := strconv.ParseInt(f[1], 10, 64)
	st, err2 := strconv.ParseUint(f[2], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return entry{}, fmt.Errorf("%q: %w", v, err)
	}
	return entry{role: imapi.Role(f[0]), expires: time.UnixMilli(exp), stamp: st, callback: f[3] == "c"}, nil
}
