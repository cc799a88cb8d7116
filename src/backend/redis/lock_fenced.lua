-- KEYS[1]=lock key, KEYS[2]=fence counter key; ARGV[1]=owner token, ARGV[2]=lease_ms; returns {1, fence} when the record was created (fence = the counter after INCR), {0, pttl_ms} when another record is there (-1: it has no expiry)
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('INCR', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
