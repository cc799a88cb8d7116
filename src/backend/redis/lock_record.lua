-- KEYS[1]=lock key; returns {record or nil, PTTL in ms (-1: no expiry, -2: no key)}: one key, so one slot and one round trip on a cluster too, where a MULTI pipeline's atomicity is not promised
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
