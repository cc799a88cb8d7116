-- KEYS[1]=key; ARGV[1]=mode ('absent' | 'prefix' | 'exact'), ARGV[2]=expected bytes (unused | envelope header, whose 6th byte, fresh or stale, is not compared | whole stored value), ARGV[3]=new stored value, ARGV[4]=ttl_ms ('' for no expiry); returns 1 when the value was stored, 0 when the key did not match (and was left as it was)
local current = redis.call('GET', KEYS[1])
local matches
if ARGV[1] == 'absent' then
  matches = current == false
elseif ARGV[1] == 'prefix' then
  matches = current ~= false and string.sub(current, 1, 5) == string.sub(ARGV[2], 1, 5)
    and string.sub(current, 7, #ARGV[2]) == string.sub(ARGV[2], 7)
elseif ARGV[1] == 'exact' then
  matches = current == ARGV[2]
else
  return redis.error_reply('stampede cas: unknown mode ' .. ARGV[1])
end
if not matches then
  return 0
end
if ARGV[4] == '' then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
end
return 1
