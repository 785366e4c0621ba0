-- Reset a queue's extra-rows counter to 0 when the queue is empty. It moves with the queue in the same
-- pipeline or Lua call; this catches any drift (RQ's own tools emptying a queue, say).
-- KEYS: [1] queue, [2] extra-rows counter.
local rows = redis.call('GET', KEYS[2])
if rows and rows ~= '0' and redis.call('LLEN', KEYS[1]) == 0 then redis.call('SET', KEYS[2], 0) return 1 end
return 0
