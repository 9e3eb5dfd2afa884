-- fib: the n-th Fibonacci number, computed iteratively with integers.
return {
  description = "The n-th Fibonacci number: fib(0) = 0, fib(1) = 1; n up to 92 (64-bit integers)",
  args = "n: integer, 0..92",
  run = function(args)
    local n = math.tointeger(args[1])
    if n == nil or n < 0 or n > 92 then
      error("fib expects an integer n with 0 <= n <= 92, got " .. tostring(args[1]), 0)
    end
    local a, b = 0, 1
    for _ = 1, n do
      a, b = b, a + b
    end
    return a
  end,
}
