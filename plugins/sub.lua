-- sub: the difference of two numbers.
return {
  description = "Subtracts two numbers: sub(a, b) = a - b",
  args = "a, b: numbers",
  run = function(args)
    return args[1] - args[2]
  end,
}
