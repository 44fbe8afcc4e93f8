-- Reads a channel's position and, optionally, its history; starts the
-- channel's stream (its epoch) if it has none, so the position returned
-- can be continued by later publications.
--
-- KEYS[1], KEYS[2]  meta hash and history stream of the channel
-- ARGV[1]           epoch for a stream that starts now
-- ARGV[2]           meta TTL in ms
-- ARGV[3]           "1" to return history, "0" for the position alone
--
-- Returns {epoch, offset, entries} with entries as XRANGE gives them.
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', epoch)
  redis.call('DEL', KEYS[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local off = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')
local entries = {}
if ARGV[3] == '1' then
  entries = redis.call('XRANGE', KEYS[2], '-', '+')
end
return {epoch, off, entries}
