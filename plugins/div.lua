-- div: the quotient of two numbers, always a float (Lua's `/`).
return {
  description = "Divides two numbers: div(a, b) = a / b; fails on division by zero",
  args = "a, b: numbers, b not zero",
  run = function(args)
    local a, b = args[1], args[2]
    if b == 0 then
      error("division by zero", 0)
    end
    return a / b
  end,
}
