-- KEYS[1]=lock key, KEYS[2]=fence counter key; ARGV[1]=owner token, ARGV[2]=lease_ms, ARGV[3]=counter_ttl_ms; returns {1, fence} when the record was created (fence = the counter after INCR; a missing counter is first seeded with the server clock in µs since the epoch; the counter's TTL is reset to ARGV[3]), {0, pttl_ms} when another record is there (-1: it has no expiry); a counter that is not an integer fails the script before anything is written
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  -- Above every token an expired or lost counter gave out, as long as it
  -- gave out fewer than one per microsecond of its life. Lua numbers are
  -- doubles: exact up to 2^53 µs (the year 2255); %.0f avoids 1.7e+15.
  local now = redis.call('TIME')
  local micros = tonumber(now[1]) * 1000000 + tonumber(now[2])
  redis.call('SET', KEYS[2], string.format('%.0f', micros))
end
local fence = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, fence}
