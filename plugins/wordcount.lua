-- wordcount: how often each word occurs in a text, or only the number of words.
return {
  description = "Counts words: wordcount(text) = {word = count, ...}; wordcount(text, \"total\") = number of words",
  args = "text: string; mode: optional \"total\"",
  run = function(args, task)
    local text, mode = args[1], args[2]
    if type(text) ~= "string" then
      error("wordcount expects a text as its first argument, got " .. type(text), 0)
    end
    local counts, total = {}, 0
    for word in text:lower():gmatch("[%w']+") do
      counts[word] = (counts[word] or 0) + 1
      total = total + 1
    end
    task.log("counted " .. total .. " words")
    if mode == "total" then
      return total
    end
    return counts
  end,
}
