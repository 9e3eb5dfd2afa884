-- sleep: waits, without using the CPU, then returns how long it slept.
return {
  description = "Sleeps for the given number of seconds and returns it",
  args = "seconds: number",
  run = function(args, task)
    local seconds = args[1] or 1
    if type(seconds) ~= "number" or seconds < 0 then
      error("sleep expects a non-negative number of seconds", 0)
    end
    -- Sleep in steps so the progress shows in the monitor.
    local steps = math.max(1, math.ceil(seconds))
    for step = 1, steps do
      task.sleep(seconds / steps)
      task.progress(step / steps)
    end
    return seconds
  end,
}
