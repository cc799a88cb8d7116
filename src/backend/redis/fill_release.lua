-- KEYS[1]=value key, KEYS[2]=its fill lease key; ARGV[1]=lease id, ARGV[2]=the key's fill channel, ARGV[3]=the publish command ('PUBLISH', or 'SPUBLISH' on a cluster, where the channel is in KEYS[1]'s slot); returns 1 when the lease was ARGV[1]'s and was ended (and its end published), else 0
local lease = redis.call('GET', KEYS[2])
if lease and string.sub(lease, 1, #ARGV[1]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  redis.call(ARGV[3], ARGV[2], KEYS[1])
  return 1
end
return 0
