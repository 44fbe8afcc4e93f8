-- Publishes one message to one channel in one step, so a retried publish
-- is either a duplicate of a complete one or a first one. Every key is the
-- channel's own (one hash tag), so on a Redis Cluster the script runs on the
-- channel's shard. The dedupe key is set last: Redis does not roll a script
-- back, and should a command fail half way, the retry must publish again,
-- not be taken for a duplicate of an event that never fully went out.
--
-- KEYS[1]  dedupe key of the message ID in this channel
-- KEYS[2]  the channel's meta hash (epoch "e", offset "o", start "s")
-- KEYS[3]  the channel's history stream
-- ARGV[1]  dedupe window in ms; "0" disables deduplication
-- ARGV[2]  the encoded event
-- ARGV[3]  history size; "0" keeps no history
-- ARGV[4]  history TTL in ms
-- ARGV[5]  meta TTL in ms (how long offsets outlive silence)
-- ARGV[6]  epoch for a channel whose stream starts now
-- ARGV[7]  the publish time in unix ms, kept with the history entry and
--          as the start of a stream that starts now
-- ARGV[8]  the pub/sub channel name
-- ARGV[9]  PUBLISH, or SPUBLISH on a cluster
-- ARGV[10] history hold in ms: entries beyond the history size are kept
--          until this old; "0" keeps the history size alone
-- ARGV[11] the most entries kept, whatever their age
--
-- Returns {offset, epoch} of the publication, and for a duplicate
-- {offset, epoch, 1} of the first one (false when its dedupe key holds no
-- position, as keys written before it did).
if ARGV[1] ~= '0' then
  local first = redis.call('GET', KEYS[1])
  if first then
    local off, epoch = string.match(first, '^(%d+) (.+)$')
    if not off then
      return false
    end
    return {tonumber(off), epoch, 1}
  end
end
local meta, hist = KEYS[2], KEYS[3]
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  -- A new stream: any history left from an older epoch cannot be
  -- continued, and stream IDs must start again from 1.
  epoch = ARGV[6]
  redis.call('HSET', meta, 'e', epoch, 's', ARGV[7])
  redis.call('DEL', hist)
end
local off = redis.call('HINCRBY', meta, 'o', 1)
redis.call('PEXPIRE', meta, ARGV[5])
if ARGV[3] ~= '0' and ARGV[10] == '0' then
  redis.call('XADD', hist, 'MAXLEN', ARGV[3], off .. '-0', 'd', ARGV[2], 't', ARGV[7])
  redis.call('PEXPIRE', hist, ARGV[4])
elseif ARGV[3] ~= '0' then
  redis.call('XADD', hist, 'MAXLEN', ARGV[11], off .. '-0', 'd', ARGV[2], 't', ARGV[7])
  redis.call('PEXPIRE', hist, ARGV[4])
  -- Beyond the history size, the oldest entries go once older than the
  -- hold. Looked at on every fourth publication, eight at most: the
  -- stream shrinks back after a burst at twice the pace it is written,
  -- and a busy channel whose oldest entry is still young pays for one
  -- entry read every fourth time.
  local extra = redis.call('XLEN', hist) - tonumber(ARGV[3])
  if extra > 0 and off % 4 == 0 then
    local cutoff = tonumber(ARGV[7]) - tonumber(ARGV[10])
    local upto = nil
    local n = 1
    while n > 0 do
      for _, e in ipairs(redis.call('XRANGE', hist, upto and ('(' .. upto .. '-0') or '-', '+', 'COUNT', n)) do
        -- e is {id, {'d', data, 't', ms}}
        if tonumber(e[2][4] or '0') > cutoff then
          n = 0
          break
        end
        upto = tonumber(string.match(e[1], '^(%d+)'))
        extra = extra - 1
      end
      -- The oldest was old: the next ones may be too.
      if n == 1 and upto then n = math.min(extra, 7) else n = 0 end
    end
    if upto then
      redis.call('XTRIM', hist, 'MINID', (upto + 1) .. '-0')
    end
  end
end
redis.call(ARGV[9], ARGV[8], off .. ' ' .. epoch .. ' ' .. ARGV[2])
if ARGV[1] ~= '0' then
  redis.call('SET', KEYS[1], off .. ' ' .. epoch, 'PX', ARGV[1])
end
return {off, epoch}
