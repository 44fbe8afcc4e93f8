-- Reads a channel's position and, optionally, its history. It creates no
-- key of the channel: a channel without a stream has none. It answers with
-- the data set's id, kept in a key of the channel's slot and made here if
-- missing, so that the position of an empty channel names the data set it
-- was read from (see streamState.replay).
--
-- KEYS[1], KEYS[2]  meta hash and history stream of the channel
-- KEYS[3]           the data set id of the channel's slot
-- ARGV[1]           an id for a data set that has none yet
-- ARGV[2]           "1" to return history, "0" for the position alone
--
-- Returns {epoch or false, offset, start ms, data set id, entries, tag}
-- with entries as XRANGE gives them and tag that of the newest publication
-- ("" when not known: a node that keeps no tags published it).
local run = redis.call('GET', KEYS[3])
if not run then
  run = ARGV[1]
  redis.call('SET', KEYS[3], run)
end
local meta = redis.call('HMGET', KEYS[1], 'e', 'o', 's', 'h')
if not meta[1] then
  return {false, 0, 0, run, {}, ''}
end
local ho, tag = string.match(meta[4] or '', '^(%d+) (%x+)$')
if not ho or ho ~= (meta[2] or '0') then
  tag = ''
end
local entries = {}
if ARGV[2] == '1' then
  entries = redis.call('XRANGE', KEYS[2], '-', '+')
end
return {meta[1], tonumber(meta[2] or '0'), tonumber(meta[3] or '0'), run, entries, tag}
