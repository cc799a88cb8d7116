-- KEYS[1]=value key, KEYS[2]=its fill lease key; ARGV[1]=lease id, ARGV[2]=lease_ms, ARGV[3]=the stale marker (6 bytes); returns {0, value, its PTTL} for a value not marked stale (the PTTL for a near cache's copy), {1, value or nil, -3} when the fill lease is (now, or already) ARGV[1]'s, {2, value or nil, -3} when another lease is out; the lease record holds the id, then 'a' if the key was absent or 'v' and the value's first 14 bytes
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, 6) ~= ARGV[3] then
  return {0, value, redis.call('PTTL', KEYS[1])}
end
local held = redis.call('GET', KEYS[2])
if held then
  if string.sub(held, 1, #ARGV[1]) == ARGV[1] then
    return {1, value, -3}
  end
  return {2, value, -3}
end
local seen = 'a'
if value then
  seen = 'v' .. string.sub(value, 1, 14)
end
redis.call('SET', KEYS[2], ARGV[1] .. seen, 'PX', ARGV[2])
return {1, value, -3}
