-- echo: returns its arguments unchanged.
return {
  description = "Returns its arguments as an array, unchanged",
  args = "anything",
  run = function(args)
    return args
  end,
}
