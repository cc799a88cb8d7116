-- KEYS[1]=key, KEYS[2]=its fill lease key; ARGV[1]=the key's fill channel, ARGV[2]=the publish command ('PUBLISH', or 'SPUBLISH' on a cluster, where the channel is in KEYS[1]'s slot); returns 1 when a value was deleted, else 0; voids any fill lease on the key too (publishing its end)
local removed = redis.call('DEL', KEYS[1])
if redis.call('DEL', KEYS[2]) == 1 then
  redis.call(ARGV[2], ARGV[1], KEYS[1])
end
return removed
