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
-- KEYS[3i-1] channel i's meta hash (epoch "e", offset "o", start "s")
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
-- ARGV[10+i] channel i's pub/sub channel name
--
-- Returns, for each channel, {offset, epoch} of the publication, and for a
-- duplicate {offset, epoch, 1} of the first one (false when its dedupe key
-- holds no position, as keys written before it did), or the error that
-- stopped the channel.

-- The steps of one channel's publication, each its own function below,
-- run by publish in this order: an earlier publication of the message ID
-- answers for it; else the offset is taken (a stream starting where the
-- channel has none), the event kept in the history, sent to the node
-- subscribers, and the message ID marked as published, last.

-- earlier returns the reply for a message ID already published on the
-- channel, or nil for a new one.
local function earlier(seen)
  if ARGV[1] == '0' then
    return nil
  end
  local mark = redis.call('GET', seen)
  if not mark then
    return nil
  end
  local n, era = string.match(mark, '^(%d+) (.+)$')
  if n then
    return {tonumber(n), era, 1}
  end
  return false -- a mark from before marks held a position
end

-- take gives the publication its place in the channel's stream: the
-- stream's epoch and the next offset. A channel with no epoch gets a new
-- stream, which continues no history left from an older one (stream IDs
-- start again from 1). The meta hash lives ARGV[5] from now.
local function take(meta, hist)
  local era = redis.call('HGET', meta, 'e')
  if era == false then
    era = ARGV[6]
    redis.call('DEL', hist)
    redis.call('HSET', meta, 'e', era, 's', ARGV[7])
  end
  local n = redis.call('HINCRBY', meta, 'o', 1)
  redis.call('PEXPIRE', meta, ARGV[5])
  return era, n
end

-- trim drops, beyond the history size, the oldest entries once older than
-- the hold. Looked at on every fourth publication, eight entries at most:
-- the stream shrinks back after a burst at twice the pace it is written,
-- and a busy channel whose oldest entry is still young pays for one entry
-- read every fourth time.
local function trim(hist, n)
  local over = redis.call('XLEN', hist) - tonumber(ARGV[3])
  if over <= 0 or n % 4 ~= 0 then
    return
  end
  local cutoff = tonumber(ARGV[7]) - tonumber(ARGV[9])
  local last = nil -- offset of the newest entry found old enough to go
  local batch = 1
  while batch > 0 do
    local from = last and ('(' .. last .. '-0') or '-'
    local young = false
    for _, e in ipairs(redis.call('XRANGE', hist, from, '+', 'COUNT', batch)) do
      -- e is {id, {'d', data, 't', ms}}
      if tonumber(e[2][4] or '0') > cutoff then
        young = true
        break
      end
      last = tonumber(string.match(e[1], '^(%d+)'))
      over = over - 1
    end
    -- Only once the first entry was old are the next ones looked at.
    if not young and batch == 1 and last then
      batch = math.min(over, 7)
    else
      batch = 0
    end
  end
  if last then
    redis.call('XTRIM', hist, 'MINID', (last + 1) .. '-0')
  end
end

-- keep adds the event to the channel's history, as entry "<n>-0" with the
-- event and the publish time, and renews the history's life.
local function keep(hist, n, id)
  if ARGV[3] == '0' then
    return
  end
  local most = ARGV[3]
  if ARGV[9] ~= '0' then
    most = ARGV[10]
  end
  redis.call('XADD', hist, 'MAXLEN', most, id, 'd', ARGV[2], 't', ARGV[7])
  redis.call('PEXPIRE', hist, ARGV[4])
  if ARGV[9] ~= '0' then
    trim(hist, n)
  end
end

local function publish(seen, meta, hist, name)
  local reply = earlier(seen)
  if reply ~= nil then
    return reply
  end
  local era, n = take(meta, hist)
  -- The offset as text, made once: Lua formats a number each time it is
  -- joined to a string.
  local ns = tostring(n)
  local at = ns .. ' ' .. era
  keep(hist, n, ns .. '-0')
  redis.call(ARGV[8], name, at .. ' ' .. ARGV[2])
  if ARGV[1] ~= '0' then
    redis.call('SET', seen, at, 'PX', ARGV[1])
  end
  return {n, era}
end

-- A channel that fails (its keys of the wrong type, say) fails alone: its
-- slot holds the error and its dedupe key stays unset, so a retry redoes it
-- alone, and the channels after it go on.
local out = {}
for i = 1, #KEYS / 3 do
  local ok, res = pcall(publish, KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], ARGV[10 + i])
  if ok then
    out[i] = res
  else
    if type(res) == 'table' then res = res.err end
    out[i] = redis.error_reply(tostring(res))
  end
end
return out
