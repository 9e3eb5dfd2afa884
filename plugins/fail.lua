-- fail: always fails, to show retries and dead letters in demos and tests.
return {
  description = "Always fails with \"this task always fails\"",
  run = function()
    error("this task always fails", 0)
  end,
}
