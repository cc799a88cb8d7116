-- KEYS[1]=lock key, KEYS[2]=fence counter key; ARGV[1]=owner token, ARGV[2]=lease_ms, ARGV[3]=counter_ttl_ms; returns {1, fence} when the record was created (fence = the larger of the counter + 1 and the server clock in µs since the epoch; it is stored back in the counter with TTL ARGV[3]), {0, pttl_ms} when another record is there (-1: it has no expiry); a counter that is not a whole number below 2^53 fails the script before anything is written
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
-- Never below the clock: a counter that is gone (expired, FLUSHALL, a
-- restart without persistence) or behind (a failover that lost the last
-- increments) starts again above every token it gave out, as long as it
-- gave out fewer than one per microsecond on average. Lua numbers are
-- doubles: exact up to 2^53 (µs: the year 2255); %.0f avoids 1.7e+15.
local now = redis.call('TIME')
local fence = tonumber(now[1]) * 1000000 + tonumber(now[2])
local counter = redis.call('GET', KEYS[2])
if counter then
  local last = tonumber(counter)
  if not last or last ~= math.floor(last) or last < 0 or last >= 9007199254740991 then
    return redis.error_reply('stampede lock: fence counter ' .. KEYS[2] .. ' holds ' .. counter .. ', not a token')
  end
  if last + 1 > fence then
    fence = last + 1
  end
end
redis.call('SET', KEYS[2], string.format('%.0f', fence), 'PX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, fence}
