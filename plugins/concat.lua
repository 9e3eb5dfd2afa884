-- concat: joins its arguments into one string.
return {
  description = "Joins its arguments into one string: concat(\"a\", \"b\", 1) = \"ab1\"",
  args = "strings or numbers",
  run = function(args)
    local parts = {}
    for i, value in ipairs(args) do
      local kind = type(value)
      if kind ~= "string" and kind ~= "number" then
        error(("concat: argument %d is a %s, not a string or a number"):format(i, kind), 0)
      end
      parts[i] = tostring(value)
    end
    return table.concat(parts)
  end,
}
