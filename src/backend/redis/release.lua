-- KEYS[1]=lock key; ARGV[1]=owner token, ARGV[2]=release channel, ARGV[3]=the publish command ('PUBLISH', or 'SPUBLISH' on a cluster, where the channel is in KEYS[1]'s slot); returns 1 when the record held the owner and was deleted (and the release published on the channel), else 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call(ARGV[3], ARGV[2], KEYS[1])
  return 1
end
return 0
