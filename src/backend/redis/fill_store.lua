-- KEYS[1]=value key, KEYS[2]=its fill lease key; ARGV[1]=lease id, ARGV[2]=new stored value, ARGV[3]=ttl_ms ('' for no expiry), ARGV[4]=the key's fill channel, ARGV[5]=the publish command ('PUBLISH', or 'SPUBLISH' on a cluster, where the channel is in KEYS[1]'s slot); returns 1 when the value was stored (the lease was ARGV[1]'s and the key unchanged since it was granted), else 0; a lease that was ARGV[1]'s ends either way, and its end is published
local lease = redis.call('GET', KEYS[2])
if not lease or string.sub(lease, 1, #ARGV[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2])
local value = redis.call('GET', KEYS[1])
local now = 'a'
if value then
  now = 'v' .. string.sub(value, 1, 14)
end
local stored = 0
if now == string.sub(lease, #ARGV[1] + 1) then
  if ARGV[3] == '' then
    redis.call('SET', KEYS[1], ARGV[2])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  end
  stored = 1
end
redis.call(ARGV[5], ARGV[4], KEYS[1])
return stored
