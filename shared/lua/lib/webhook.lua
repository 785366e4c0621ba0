-- Schedule one webhook delivery, due at `due` (Unix time): its record (url, attempts) and its place in the set.
local function enqueue_delivery(record_key, set_key, member, url, ttl, due)
  redis.call('HSET', record_key, WEBHOOK.URL, url, WEBHOOK.ATTEMPTS, 0)
  redis.call('EXPIRE', record_key, ttl)
  redis.call('ZADD', set_key, due, member)
end
