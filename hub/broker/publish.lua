-- Publishes one message to several channels of one app in one step, so a
-- retried publish is either a duplicate of a complete one or a first one.
-- The dedupe key is set last: Redis does not roll a script back, and should
-- a command fail half way, the retry must publish again, not be taken for
-- a duplicate of an event that never fully went out.
--
-- KEYS[1]            dedupe key of the message ID
-- KEYS[2i], KEYS[2i+1] meta hash and history stream of channel i (i >= 1)
-- ARGV[1]            dedupe window in ms; "0" disables deduplication
-- ARGV[2]            the encoded event
-- ARGV[3]            history size; "0" keeps no history
-- ARGV[4]            history TTL in ms
-- ARGV[5]            meta TTL in ms (how long offsets outlive silence)
-- ARGV[6]            epoch for a channel whose stream starts now
-- ARGV[7]            the publish time in unix ms, kept with each history entry
-- ARGV[7+i]          pub/sub channel name of channel i
--
-- Returns false for a duplicate, else {offset1, epoch1, offset2, epoch2, ...}.
if ARGV[1] ~= '0' and redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local out = {}
for i = 1, #ARGV - 7 do
  local meta, hist = KEYS[2 * i], KEYS[2 * i + 1]
  local epoch = redis.call('HGET', meta, 'e')
  if not epoch then
    -- A new stream: any history left from an older epoch cannot be
    -- continued, and stream IDs must start again from 1.
    epoch = ARGV[6]
    redis.call('HSET', meta, 'e', epoch)
    redis.call('DEL', hist)
  end
  local off = redis.call('HINCRBY', meta, 'o', 1)
  redis.call('PEXPIRE', meta, ARGV[5])
  if ARGV[3] ~= '0' then
    redis.call('XADD', hist, 'MAXLEN', ARGV[3], off .. '-0', 'd', ARGV[2], 't', ARGV[7])
    redis.call('PEXPIRE', hist, ARGV[4])
  end
  redis.call('PUBLISH', ARGV[7 + i], off .. ' ' .. epoch .. ' ' .. ARGV[2])
  out[#out + 1] = off
  out[#out + 1] = epoch
end
if ARGV[1] ~= '0' then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return out
