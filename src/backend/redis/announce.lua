-- KEYS[1]=the change log (a stream), KEYS[2]=its sequence counter; ARGV[1]=the changed key ('' with version '*': everything), ARGV[2]=the change channel, ARGV[3]=the writer's origin, ARGV[4]=the new version (16 hex digits; '' when removed or unknown; '*' to flush everything), ARGV[5]=the log's length cap; returns the change's sequence number. Also the body of every announcing write script (see `scripts::announced`), called there as announce(KEYS[1], KEYS[#KEYS - 1], KEYS[#KEYS], …) after the write. Numbers the change (INCR), logs it (XADD, trimmed to about the cap) and publishes "<stream id> <seq>:<origin>:<version>:<key>", all in the write's script, so no write is ever seen without its change or the other way round.
local function announce(key, log, counter, channel, origin, version, cap)
  local seq = redis.call('INCR', counter)
  local change = seq .. ':' .. origin .. ':' .. version .. ':' .. key
  local id = redis.call('XADD', log, 'MAXLEN', '~', cap, '*', 'c', change)
  redis.call('PUBLISH', channel, id .. ' ' .. change)
  return seq
end
