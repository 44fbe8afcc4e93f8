-- Publishes one message to one or more channels in one step each, so a
-- retried publish is, on each channel, either a duplicate of a complete one
-- or a first one. Each channel's keys share its hash tag, so on a Redis
-- Cluster a call names one channel and runs on that channel's shard; on one
-- server a call names up to 64 channels of the message, which saves a
-- script call per channel without holding Redis for a whole fan-out. The
-- channels are published in turn, each complete (or failed) before the
-- next starts. On each, the dedupe key is set last: Redis does not roll a
-- script back, and should a command fail half way, the retry must publish
-- again, not be taken for a duplicate of an event that never fully went
-- out.
--
-- KEYS[3i-2] dedupe key of the message ID in channel i
-- KEYS[3i-1] channel i's meta hash (epoch "e", offset "o", start "s", and
--            "h": "<offset> <tag>" of the newest publication)
-- KEYS[3i]   channel i's history stream
-- ARGV[1]  dedupe window in ms; "0" disables deduplication
-- ARGV[2]  the encoded event
-- ARGV[3]  history size; "0" keeps no history
-- ARGV[4]  history TTL in ms
-- ARGV[5]  meta TTL in ms (how long offsets outlive silence)
-- ARGV[6]  epoch for a channel whose stream starts now
-- ARGV[7]  the publish time in unix ms, kept with the history entry and
--          as the start of a stream that starts now
-- ARGV[8]  PUBLISH, or SPUBLISH on a cluster
-- ARGV[9]  history hold in ms: entries beyond the history size are kept
--          until this old; "0" keeps the history size alone
-- ARGV[10] the most entries kept, whatever their age
-- ARGV[11] the message ID, which each publication's tag is made of
-- ARGV[11+i] channel i's pub/sub channel name
--
-- Each publication gets a tag: the first 12 hex digits of SHA-1 over the
-- tag of the one before it in the channel ("" for the first), a space and
-- the message ID (broker.NextTag). A stream that Redis rewrote (a replica
-- promoted without the last writes, a restored backup) hands out offsets
-- again, with other tags, so that a position from before is told from the
-- one now at its offset. A message published again at the offset it had,
-- after the same ones, gets the same tag.
--
-- Returns, for each channel, {offset, epoch, tag} of the publication, and
-- for a duplicate {offset, epoch, tag, 1} of the first one (false when its
-- dedupe key holds no position, as keys written before it did; tag "" when
-- it holds no tag), or the error that stopped the channel.

-- One channel's publication, in publish below, is these steps, each a
-- function of its own: an earlier publication of the message ID answers
-- for it; else the publication is placed in the channel's stream (its
-- epoch, its offset and the tag before it) and tagged, its offset is
-- claimed in the meta hash, the event is kept in the history and sent to
-- the nodes' subscribers, and the message ID is marked as published.

-- earlier returns the reply for a message ID the channel already has, or
-- nil for a new one. The mark's expiry is written again, unchanged, so
-- that a WAIT after this call covers the first publication too, which
-- another connection may have made and no replica may hold yet.
local function earlier(seen)
  if ARGV[1] == '0' then
    return nil
  end
  local mark = redis.call('GET', seen)
  if not mark then
    return nil
  end
  local left = redis.call('PTTL', seen)
  if left > 0 then
    redis.call('PEXPIRE', seen, left)
  end
  local n, era, tag = string.match(mark, '^(%d+) (%S+) ?(%x*)$')
  if not n then
    return false -- a mark from before marks held a position
  end
  return {tonumber(n), era, tag, 1}
end

-- place returns where the publication goes: the epoch of the channel's
-- stream, the next offset in it, and the tag of the publication before
-- it. A channel without an epoch starts a stream of ARGV[6], which
-- continues no history left from an older one: stream IDs start again
-- from 1.
local function place(meta, hist)
  local m = redis.call('HMGET', meta, 'e', 'o', 'h')
  local era = m[1]
  if not era then
    redis.call('DEL', hist)
    return ARGV[6], 1, ''
  end
  local n = (tonumber(m[2]) or 0) + 1
  -- "h" is the newest publication's unless a node that keeps no tags
  -- published after it, writing "o" alone: the tag before is not known.
  local at, tag = string.match(m[3] or '', '^(%d+) (%x+)$')
  if at and tonumber(at) == n - 1 then
    return era, n, tag
  end
  return era, n, ''
end

-- tagged returns the tag of message ARGV[11] published after the one
-- tagged prev, as broker.NextTag makes it: both brokers tag alike, and
-- the same message published again after the same one gets the same tag.
local function tagged(prev)
  return string.sub(redis.sha1hex(prev .. ' ' .. ARGV[11]), 1, 12)
end

-- claim records offset n, with its tag, as the channel's newest, before
-- anything is written under it: a step after it that fails leaves a gap,
-- which a subscriber notices, never one offset given to two events. The
-- first offset of a stream records the stream's epoch and start too. The
-- meta hash lives ARGV[5] from now.
local function claim(meta, era, n, ns, tag)
  local newest = ns .. ' ' .. tag
  if n == 1 then
    redis.call('HSET', meta, 'e', era, 's', ARGV[7], 'o', ns, 'h', newest)
  else
    redis.call('HSET', meta, 'o', ns, 'h', newest)
  end
  redis.call('PEXPIRE', meta, ARGV[5])
end

-- aged reads the oldest entries of hist, up to count of them, those after
-- offset after when it is given, and stops at the first one published
-- after cutoff. It returns the offset of the last one older (after when
-- none is) and how many were.
local function aged(hist, after, count, cutoff)
  local from = '-'
  if after then
    from = '(' .. after .. '-0'
  end
  local last, old = after, 0
  for _, e in ipairs(redis.call('XRANGE', hist, from, '+', 'COUNT', count)) do
    -- e is {id, {'d', data, 't', ms, 'h', tag, 'p', prev}}
    if tonumber(e[2][4] or '0') > cutoff then
      break
    end
    last = tonumber(string.match(e[1], '^(%d+)'))
    old = old + 1
  end
  return last, old
end

-- trim lets entries beyond the history size go once they are older than
-- the hold, oldest first. It looks on every fourth publication, at the
-- oldest entry and, only when that one may go, at up to seven more: the
-- stream shrinks back after a burst at twice the pace it is written, and
-- a busy channel whose oldest entry is still young pays for one entry
-- read every fourth time.
local function trim(hist, n)
  local over = redis.call('XLEN', hist) - tonumber(ARGV[3])
  if over <= 0 or n % 4 ~= 0 then
    return
  end
  local cutoff = tonumber(ARGV[7]) - tonumber(ARGV[9])
  local last, old = aged(hist, nil, 1, cutoff)
  over = over - old
  if old == 1 and over > 0 then
    last = aged(hist, last, math.min(over, 7), cutoff)
  end
  if last then
    redis.call('XTRIM', hist, 'MINID', (last + 1) .. '-0')
  end
end

-- keep adds the event to the channel's history as entry "<n>-0", with the
-- publish time, which its age is told by, and its tag and the one before
-- it, so that an event read from history is checked as one received live
-- is. The history lives ARGV[4] from now. Without a hold it keeps the
-- history size; with one, up to ARGV[10] entries, which trim lets go by
-- age.
local function keep(hist, n, ns, tag, prev)
  if ARGV[3] == '0' then
    return
  end
  local most = ARGV[3]
  if ARGV[9] ~= '0' then
    most = ARGV[10]
  end
  redis.call('XADD', hist, 'MAXLEN', most, ns .. '-0', 'd', ARGV[2], 't', ARGV[7], 'h', tag, 'p', prev)
  redis.call('PEXPIRE', hist, ARGV[4])
  if ARGV[9] ~= '0' then
    trim(hist, n)
  end
end

-- send publishes the event to the nodes subscribed to the channel as
-- "<offset> <epoch>:<tag>:<prev> <event>": a node that knows no tags
-- reads "<epoch>:<tag>:<prev>" as an epoch of its own, which it does not
-- follow, and fills the gap from history, which it reads as before.
local function send(name, at, tag, prev)
  redis.call(ARGV[8], name, at .. ':' .. tag .. ':' .. prev .. ' ' .. ARGV[2])
end

-- mark records the message ID as published on the channel, at the
-- position and with the tag that earlier answers a repeat with. It is the
-- last step, so that a channel left half published is published again.
local function mark(seen, at, tag)
  if ARGV[1] ~= '0' then
    redis.call('SET', seen, at .. ' ' .. tag, 'PX', ARGV[1])
  end
end

-- publish publishes the event to one channel in the steps above and
-- returns the channel's reply.
local function publish(seen, meta, hist, name)
  local reply = earlier(seen)
  if reply ~= nil then
    return reply
  end
  local era, n, prev = place(meta, hist)
  local tag = tagged(prev)
  -- The offset as text, made once: Lua formats a number each time it is
  -- joined to a string.
  local ns = tostring(n)
  claim(meta, era, n, ns, tag)
  keep(hist, n, ns, tag, prev)
  local at = ns .. ' ' .. era
  send(name, at, tag, prev)
  mark(seen, at, tag)
  return {n, era, tag}
end

-- A channel that fails (its keys of the wrong type, say) fails alone: its
-- slot holds the error and its dedupe key stays unset, so a retry redoes it
-- alone, and the channels after it go on.
local out = {}
for i = 1, #KEYS / 3 do
  local ok, res = pcall(publish, KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], ARGV[11 + i])
  if ok then
    out[i] = res
  else
    if type(res) == 'table' then res = res.err end
    out[i] = redis.error_reply(tostring(res))
  end
end
return out
