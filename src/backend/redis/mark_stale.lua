-- KEYS[1]=value key, KEYS[2]=its fill lease key; ARGV[1]=stale header (the stale marker and a fresh nonce, 14 bytes), ARGV[2]=grace_ms, ARGV[3]=the 5 bytes every envelope marker starts with, ARGV[4]=the key's fill channel, ARGV[5]=the publish command ('PUBLISH', or 'SPUBLISH' on a cluster, where the channel is in KEYS[1]'s slot); returns 1 when a value was marked stale (its TTL cut to the grace when longer), 0 when the key held none; voids any fill lease either way (publishing its end)
if redis.call('DEL', KEYS[2]) == 1 then
  redis.call(ARGV[5], ARGV[4], KEYS[1])
end
local value = redis.call('GET', KEYS[1])
if not value then
  return 0
end
local ttl = tonumber(ARGV[2])
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 and pttl < ttl then
  ttl = pttl
end
if #value >= 14 and string.sub(value, 1, 5) == ARGV[3] then
  redis.call('SETRANGE', KEYS[1], 0, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('SET', KEYS[1], ARGV[1] .. value, 'PX', ttl)
end
return 1
