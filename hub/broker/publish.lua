-- Publishes one message to one or more channels in one step each, so a
-- retried publish is, on each channel, either a duplicate of a complete one
-- or a first one. Each channel's keys share its hash tag, so on a Redis
-- Cluster a call names one channel and runs on that channel's shard; on one
-- server a call names up to 64 channels of the message, which saves a
-- script call per channel without holding Redis for a whole fan-out. The channels are published in turn, each complete
-- (or failed) before the next starts. On each, the dedupe key is set last: Redis does
-- not roll a script back, and should a command fail half way, the retry
-- must publish again, not be taken for a duplicate of an event that never
-- fully went out.
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
local function publish(seen, meta, hist, name)
  if ARGV[1] ~= '0' then
    local first = redis.call('GET', seen)
    if first then
      -- Written again as it is, so that a WAIT after this call covers
      -- the first publication too, which another connection may have
      -- made and no replica may have yet.
      local ttl = redis.call('PTTL', seen)
      if ttl > 0 then
        redis.call('PEXPIRE', seen, ttl)
      end
      local off, epoch, tag = string.match(first, '^(%d+) (%S+) ?(%x*)$')
      if not off then
        return false
      end
      return {tonumber(off), epoch, tag, 1}
    end
  end
  local m = redis.call('HMGET', meta, 'e', 'o', 'h')
  local epoch = m[1]
  local prev = ''
  local off = 1
  if not epoch then
    -- A new stream: any history left from an older epoch cannot be
    -- continued, and stream IDs must start again from 1.
    epoch = ARGV[6]
    redis.call('DEL', hist)
  else
    off = (tonumber(m[2]) or 0) + 1
    -- The newest publication's tag, unless a node that keeps none
    -- published after it.
    local ho, ht = string.match(m[3] or '', '^(%d+) (%x+)$')
    if ho and tonumber(ho) == off - 1 then
      prev = ht
    end
  end
  -- The offset as text, made once: Lua formats a number each time it is
  -- joined to a string.
  local offs = tostring(off)
  local tag = string.sub(redis.sha1hex(prev .. ' ' .. ARGV[11]), 1, 12)
  if off == 1 then
    redis.call('HSET', meta, 'e', epoch, 's', ARGV[7], 'o', offs, 'h', offs .. ' ' .. tag)
  else
    redis.call('HSET', meta, 'o', offs, 'h', offs .. ' ' .. tag)
  end
  local pos = offs .. ' ' .. epoch
  redis.call('PEXPIRE', meta, ARGV[5])
  if ARGV[3] ~= '0' and ARGV[9] == '0' then
    redis.call('XADD', hist, 'MAXLEN', ARGV[3], offs .. '-0', 'd', ARGV[2], 't', ARGV[7], 'h', tag, 'p', prev)
    redis.call('PEXPIRE', hist, ARGV[4])
  elseif ARGV[3] ~= '0' then
    redis.call('XADD', hist, 'MAXLEN', ARGV[10], offs .. '-0', 'd', ARGV[2], 't', ARGV[7], 'h', tag, 'p', prev)
    redis.call('PEXPIRE', hist, ARGV[4])
    -- Beyond the history size, the oldest entries go once older than the
    -- hold. Looked at on every fourth publication, eight at most: the
    -- stream shrinks back after a burst at twice the pace it is written,
    -- and a busy channel whose oldest entry is still young pays for one
    -- entry read every fourth time.
    local extra = redis.call('XLEN', hist) - tonumber(ARGV[3])
    if extra > 0 and off % 4 == 0 then
      local cutoff = tonumber(ARGV[7]) - tonumber(ARGV[9])
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
  -- "<offset> <epoch>:<tag>:<prev> <event>": a node that knows no tags
  -- reads "<epoch>:<tag>:<prev>" as an epoch of its own, which it does
  -- not follow, and fills the gap from history, which it reads as before.
  redis.call(ARGV[8], name, pos .. ':' .. tag .. ':' .. prev .. ' ' .. ARGV[2])
  if ARGV[1] ~= '0' then
    redis.call('SET', seen, pos .. ' ' .. tag, 'PX', ARGV[1])
  end
  return {off, epoch, tag}
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
