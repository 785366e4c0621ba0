-- Rows waiting in a lane (every sub-queue in its ring) and in one key's sub-queue: the API's queue-depth check.
-- KEYS: [1] the lane's ring, [2] the key's sub-queue, [3] its extra-rows counter.
-- ARGV: [1] RQ's queue key prefix, [2] extra-rows key prefix.
-- Returns {lane rows, the key's rows}. Costs 2 commands per key with work waiting (read only). A sub-queue in
-- the ring twice (until the next claim drops the copy, lib/fair.lua) counts once.
local lane, seen = 0, {}
for _, sub in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if not seen[sub] then
    seen[sub] = true
    lane = lane + redis.call('LLEN', ARGV[1] .. sub) + tonumber(redis.call('GET', ARGV[2] .. sub) or '0')
  end
end
local own = redis.call('LLEN', KEYS[2]) + tonumber(redis.call('GET', KEYS[3]) or '0')
return {math.max(lane, 0), math.max(own, 0)}
