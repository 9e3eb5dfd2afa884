-- mul: the product of two numbers.
return {
  description = "Multiplies two numbers: mul(a, b) = a * b",
  args = "a, b: numbers",
  run = function(args)
    return args[1] * args[2]
  end,
}
