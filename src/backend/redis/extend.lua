-- KEYS[1]=lock key; ARGV[1]=owner token, ARGV[2]=lease_ms; returns 1 when the record held the owner and its TTL was reset to the lease, else 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
