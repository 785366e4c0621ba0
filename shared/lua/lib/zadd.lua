-- ZADD `pairs` ({score, member, score, member, ...}) to `key`, in slices that Lua's unpack() can take.
local function zadd_all(key, pairs)
  for i = 1, #pairs, 4000 do
    redis.call('ZADD', key, unpack(pairs, i, math.min(i + 3999, #pairs)))
  end
end
