-- add: the sum of two numbers.
return {
  description = "Adds two numbers: add(a, b) = a + b",
  args = "a, b: numbers",
  run = function(args)
    return args[1] + args[2]
  end,
}
