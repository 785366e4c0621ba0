-- The recovery sweep's look at one sub-queue (needs lib/ring.lua), which catches what bypassed our scripts:
-- an empty queue's extra-rows counter that drifted (RQ's own tools emptying a queue, say) is reset to 0; a
-- queue with jobs but out of its lane's ring (jobs pushed by RQ's own enqueue) joins the ring.
-- KEYS: [1] queue, [2] its extra-rows counter, [3] its lane's ring. ARGV: [1] the queue's name (its ring member).
-- Returns 1 if the counter was reset, 2 if the queue joined the ring, else 0.
if redis.call('LLEN', KEYS[1]) > 0 then
  if redis.call('LPOS', KEYS[3], ARGV[1]) then return 0 end
  redis.call('RPUSH', KEYS[3], ARGV[1])
  return 2
end
local rows = redis.call('GET', KEYS[2])
if rows and rows ~= '0' then redis.call('SET', KEYS[2], 0) return 1 end
return 0
