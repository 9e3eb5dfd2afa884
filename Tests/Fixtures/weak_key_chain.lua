-- A task that keeps Lua's garbage collector busy for seconds inside one step no hook reaches, for
-- the tests of the sandbox's watchdog. The collector walks tables with weak keys again and again
-- until no more values turn out reachable; entries chained so that each value is the next one's
-- key, in an order the walk does not follow (shuffled), make that time quadratic in the chain
-- (40,000 entries: about 8 s in plain Lua on a 2-core test machine). Then it makes garbage until
-- the collector runs.
return function()
  local weak, nodes = setmetatable({}, {__mode = "k"}), {}
  for i = 1, 40000 do nodes[i] = {} end
  for i = #nodes, 2, -1 do
    local j = math.random(i)
    nodes[i], nodes[j] = nodes[j], nodes[i]
  end
  for i = 1, #nodes - 1 do weak[nodes[i]] = nodes[i + 1] end
  local first = nodes[1]
  nodes = nil
  while true do local garbage = {} end
end
