-- Deficit round robin over one lane's sub-queues (one per API key), in rows: shared/fair.py's
-- DeficitRoundRobin.claim, step for step (its docstring explains the rules).
-- `lane`: {ring = key, deficits = key, queue_prefix = RQ's queue key prefix, quantum = rows, weights = {name = w}}.
-- `serve(queue_key, ids, deficit)` takes jobs of `ids` (popped from the head of `queue_key`) while `deficit`
-- stays > 0 and returns: jobs taken, rows taken, the index of the first id it did not use (nil: all used),
-- and true if the claim must stop here. Ids not used go back to the head of the sub-queue, in order.
-- Returns the number of jobs taken, and true if `serve` stopped the claim.
local FAIR_MAX_VISITS = 64

local function fair_quantum(lane, sub)
  local tenant = string.match(sub, '~(.*)$')
  return lane.quantum * (tenant and lane.weights[tenant] or 1)
end

local function fair_claim(lane, cap, serve)
  local taken, visits, last = 0, 0, nil
  while taken < cap and visits < FAIR_MAX_VISITS do
    local sub = redis.call('LINDEX', lane.ring, 0)
    if not sub then break end
    visits = visits + 1
    local quantum = fair_quantum(lane, sub)
    local deficit = tonumber(redis.call('HGET', lane.deficits, sub) or quantum)
    if sub == last then deficit = math.max(deficit, quantum) end  -- alone in the lane: owes nothing
    local rotate = true
    if deficit > 0 then
      local asked = math.min(cap - taken, deficit)
      local queue = lane.queue_prefix .. sub
      local ids = redis.call('LPOP', queue, asked) or {}
      local got, rows, back, halt = 0, 0, nil, false
      if #ids > 0 then got, rows, back, halt = serve(queue, ids, deficit) end
      if back and back <= #ids then
        local rest = {}
        for i = #ids, back, -1 do rest[#rest + 1] = ids[i] end
        redis.call('LPUSH', queue, unpack(rest))
      end
      taken, deficit = taken + got, deficit - rows
      if halt then
        redis.call('HSET', lane.deficits, sub, deficit)
        return taken, true
      end
      if not back and (#ids < asked or redis.call('LLEN', queue) == 0) then  -- emptied: leaves the ring now,
        -- forgets its deficit (not one claim later: an idle worker would wake for nothing)
        redis.call('LPOP', lane.ring)
        redis.call('HDEL', lane.deficits, sub)
        rotate, last = false, nil
      elseif deficit > 0 then  -- cut short by `cap`, or by cancelled jobs dropped: stays at the head
        redis.call('HSET', lane.deficits, sub, deficit)
        rotate = false
      end
    end
    if rotate then  -- the turn is over: to the back, with one more quantum
      redis.call('LMOVE', lane.ring, lane.ring, 'LEFT', 'RIGHT')
      redis.call('HSET', lane.deficits, sub, deficit + quantum)
      last = sub
    end
  end
  return taken, false
end
