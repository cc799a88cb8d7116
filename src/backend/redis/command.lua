-- KEYS[1]=key; ARGV[1]=a command that takes the key first (SET, PEXPIRE), ARGV[2…]=its other arguments; returns the command's reply. Only ever sent announcing (see `scripts::announced`), which appends the announcement's arguments: they are not the command's.
return redis.call(ARGV[1], KEYS[1], unpack(ARGV, 2, #ARGV - 5))
