-- KEYS[1]=counter key; ARGV[1]=delta (decimal), ARGV[2]=the envelope marker (6 bytes), ARGV[3]=the stale marker (6 bytes); returns {1, the new value as decimal text} when INCRBY took it (an absent key counts as 0 and gets no TTL; a value in our envelope, fresh or stale, counts as its payload and is stored back bare; the TTL is kept either way), {0, the value, out of its envelope} when INCRBY refused it (not a decimal integer in i64 range, or the sum would overflow), and then the key is left as it was
local value = redis.call('GET', KEYS[1])
local marker = value and string.sub(value, 1, 6)
local wrapped = value and #value >= 14 and (marker == ARGV[2] or marker == ARGV[3])
if wrapped then
  redis.call('SET', KEYS[1], string.sub(value, 15), 'KEEPTTL')
end
-- Redis does the arithmetic: Lua numbers are doubles, exact only to 2^53.
local reply = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(reply) == 'table' and reply.err then
  if wrapped then
    redis.call('SET', KEYS[1], value, 'KEEPTTL')
    return {0, string.sub(value, 15)}
  end
  return {0, value}
end
-- The new value as text: INCRBY's integer reply would reach Lua as a double.
return {1, redis.call('GET', KEYS[1])}
