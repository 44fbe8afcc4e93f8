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
if ARGV[3] ~= '0' then
  redis.call('XADD', hist, 'MAXLEN', ARGV[3], off .. '-0', 'd', ARGV[2], 't', ARGV[7])
  redis.call('PEXPIRE', hist, ARGV[4])
end
redis.call(ARGV[9], ARGV[8], off .. ' ' .. epoch .. ' ' .. ARGV[2])
if ARGV[1] ~= '0' then
  redis.call('SET', KEYS[1], off .. ' ' .. epoch, 'PX', ARGV[1])
end
return {off, epoch}
