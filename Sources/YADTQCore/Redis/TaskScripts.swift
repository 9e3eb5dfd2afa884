/// The server-side scripts behind every task state change. Each takes a whole
/// batch in ARGV (prefix and shared values first, then a fixed number of fields
/// per task) and returns one integer per task, so a batch costs one round trip
/// and each task's change is atomic.
///
/// Key layout under the prefix: `task:<id>` (hash), `tasks` (zset of every id by
/// queued_at), `type:<type>` (zset of the ids of that type), `index:PROCESSING` and
/// `index:FAILED` (zsets of the ids in that status), `counts` (hash: status -> number of
/// tasks in it), `stats:<epoch second>` (hash: succeeded, failed): listing, counting
/// and rates never scan the key space.
enum TaskScripts {
    /// Shared helpers, prepended to each script.
    private static let prelude = """
        -- Index changes are collected per key and written with one ZADD/ZREM per key at
        -- the end of the script: per-member calls cost Redis several times more CPU.
        local zadds, zrems, counts = {}, {}, {}
        local function add_later(key, score, id)
          local list = zadds[key]
          if not list then list = {}; zadds[key] = list end
          list[#list + 1] = score
          list[#list + 1] = id
        end
        local function remove_later(key, id)
          local list = zrems[key]
          if not list then list = {}; zrems[key] = list end
          list[#list + 1] = id
        end
        local function flush_indexes()
          -- unpack() is bounded by Lua's C stack: 4,000 arguments per call stays well inside it.
          for key, list in pairs(zrems) do
            for i = 1, #list, 4000 do redis.call('ZREM', key, unpack(list, i, math.min(i + 3999, #list))) end
          end
          for key, list in pairs(zadds) do
            for i = 1, #list, 4000 do redis.call('ZADD', key, unpack(list, i, math.min(i + 3999, #list))) end
          end
          for status, delta in pairs(counts) do
            if delta ~= 0 then redis.call('HINCRBY', ARGV[1] .. 'counts', status, delta) end
          end
        end
        -- Every status is counted (one HINCRBY per status per batch); only the small,
        -- operational ones are also listed: PROCESSING (in flight, for the orphan check) and
        -- FAILED (to look into). QUEUED and SUCCESS are listed by walking `tasks`, since a
        -- zset member added and removed per task was most of Redis's work per task.
        local listed = { PROCESSING = true, FAILED = true }
        local function move(p, id, from, to, score)
          if from then
            counts[from] = (counts[from] or 0) - 1
            if listed[from] then remove_later(p .. 'index:' .. from, id) end
          end
          counts[to] = (counts[to] or 0) + 1
          if listed[to] then add_later(p .. 'index:' .. to, score, id) end
        end
        local function terminal(status) return status == 'SUCCESS' or status == 'FAILED' end
        local function index_new(p, id, type, score)
          add_later(p .. 'tasks', score, id)
          add_later(p .. 'type:' .. type, score, id)
          move(p, id, nil, 'QUEUED', score)
        end
        -- Per-second counters of finished tasks, for throughput charts; kept an hour.
        local function count_finished(p, now, succeeded, failed)
          if succeeded + failed == 0 then return end
          local key = p .. 'stats:' .. math.floor(tonumber(now) / 1000)
          if succeeded > 0 then redis.call('HINCRBY', key, 'succeeded', succeeded) end
          if failed > 0 then redis.call('HINCRBY', key, 'failed', failed) end
          redis.call('EXPIRE', key, 3600)
        end
        local function append_json(list, entry)
          if not list or list == '' or list == '[]' then return '[' .. entry .. ']' end
          return string.sub(list, 1, -2) .. ',' .. entry .. ']'
        end

        """

    /// ARGV: prefix, then per task: id, type, args, max_attempts, queued_at.
    /// Returns 1 when the task is (now) QUEUED, 0 when the id already exists.
    /// Idempotent under a replayed pipeline: a record with this very queued_at is ours.
    /// Which ids exist is read with one ZMSCORE on `tasks` (every record is in it, scored
    /// by its queued_at) instead of one read per task.
    static let queue = RedisScript(
        name: "queue",
        source: prelude + """
            local p = ARGV[1]
            local ids = {}
            for i = 2, #ARGV, 5 do ids[#ids + 1] = ARGV[i] end
            local existing = {}
            for i = 1, #ids, 4000 do
              local scores = redis.call('ZMSCORE', p .. 'tasks', unpack(ids, i, math.min(i + 3999, #ids)))
              for j = 1, #scores do existing[i + j - 1] = scores[j] end
            end
            local out, added = {}, {}
            for i = 2, #ARGV, 5 do
              local id, queued_at = ARGV[i], ARGV[i + 4]
              local key = p .. 'task:' .. id
              local score = existing[#out + 1]
              if score then
                out[#out + 1] = (tonumber(score) == tonumber(queued_at)) and 1 or 0
              elseif added[id] then
                out[#out + 1] = 0  -- the same id twice in one batch: the second is a duplicate
              else
                added[id] = true
                redis.call('HSET', key, 'status', 'QUEUED', 'type', ARGV[i + 1], 'args', ARGV[i + 2],
                  'attempts', 0, 'max_attempts', ARGV[i + 3], 'queued_at', queued_at)
                index_new(p, id, ARGV[i + 1], queued_at)
                out[#out + 1] = 1
              end
            end
            flush_indexes()
            return out
            """)

    /// ARGV: prefix, now, worker, then per task: id, max_attempts, partition.
    /// Returns per task: n > 0 to run attempt n (now PROCESSING); 0 when the task is
    /// already terminal (skip it); -n when all n attempts were used up by workers that
    /// died mid-attempt (the caller fails it for good); 'missing' when there is no record
    /// (published by other means, or lost): the caller registers it with `queue` and asks again.
    /// The type and arguments are not sent: the record has them, and a batch costs less.
    static let begin = RedisScript(
        name: "begin",
        source: prelude + """
            local p, now, worker = ARGV[1], ARGV[2], ARGV[3]
            local out = {}
            for i = 4, #ARGV, 3 do
              local id = ARGV[i]
              local key = p .. 'task:' .. id
              local h = redis.call('HMGET', key, 'status', 'attempts', 'max_attempts', 'queued_at')
              local status = h[1]
              if not status then
                out[#out + 1] = 'missing'
              elseif terminal(status) then
                out[#out + 1] = 0
              else
                local attempts = tonumber(h[2]) or 0
                local max_attempts = tonumber(h[3]) or tonumber(ARGV[i + 1])
                if attempts >= max_attempts then
                  out[#out + 1] = -attempts
                else
                  attempts = attempts + 1
                  redis.call('HSET', key, 'status', 'PROCESSING', 'attempts', attempts, 'worker', worker,
                    'started_at', now, 'partition', ARGV[i + 2])
                  if status ~= 'PROCESSING' then move(p, id, status, 'PROCESSING', h[4]) end
                  out[#out + 1] = attempts
                end
              end
            end
            flush_indexes()
            return out
            """)

    /// ARGV: prefix, now, worker, then per task: id, attempt, outcome, payload, logs, progress.
    /// outcome: `S` success (payload = result JSON), `R` a failed attempt that will be
    /// retried, `F` the final failure (payload = error text). logs: a JSON array of
    /// lines to append, or ''. progress: a number, or ''.
    /// Returns 1 when written, 0 when stale: the task is already terminal, or another
    /// worker has started a later attempt (a worker that was frozen must not write over it).
    static let finish = RedisScript(
        name: "finish",
        source: prelude + """
            local p, now, worker = ARGV[1], ARGV[2], ARGV[3]
            local out = {}
            local succeeded, failed = 0, 0
            for i = 4, #ARGV, 6 do
              local id, attempt, outcome, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
              local key = p .. 'task:' .. id
              local h = redis.call('HMGET', key, 'status', 'attempts', 'errors', 'queued_at', 'logs')
              if terminal(h[1]) or h[2] ~= attempt then
                out[#out + 1] = 0
              else
                if ARGV[i + 4] ~= '' then
                  local lines = string.sub(ARGV[i + 4], 2, -2)
                  if lines ~= '' then redis.call('HSET', key, 'logs', append_json(h[5], lines)) end
                end
                if ARGV[i + 5] ~= '' then redis.call('HSET', key, 'progress', ARGV[i + 5]) end
                if outcome == 'S' then
                  redis.call('HSET', key, 'status', 'SUCCESS', 'result', payload, 'finished_at', now)
                  move(p, id, h[1], 'SUCCESS', h[4] or now)
                  succeeded = succeeded + 1
                else
                  local entry = cjson.encode({attempt = tonumber(attempt), worker = worker, error = payload,
                    at = tonumber(now)})
                  redis.call('HSET', key, 'error', payload, 'errors', append_json(h[3], entry))
                  if outcome == 'F' then
                    redis.call('HSET', key, 'status', 'FAILED', 'finished_at', now)
                    move(p, id, h[1], 'FAILED', h[4] or now)
                    failed = failed + 1
                  end
                end
                out[#out + 1] = 1
              end
            end
            count_finished(p, now, succeeded, failed)
            flush_indexes()
            return out
            """)

    /// ARGV: prefix, now, then per task: id, reason. A task whose publish failed goes
    /// from QUEUED to FAILED with the reason. Returns 1 when written.
    static let failUnpublished = RedisScript(
        name: "fail_unpublished",
        source: prelude + """
            local p, now = ARGV[1], ARGV[2]
            local out = {}
            for i = 3, #ARGV, 2 do
              local id, reason = ARGV[i], ARGV[i + 1]
              local key = p .. 'task:' .. id
              local h = redis.call('HMGET', key, 'status', 'queued_at')
              if h[1] == 'QUEUED' then
                local entry = cjson.encode({attempt = 0, worker = '', error = reason, at = tonumber(now)})
                redis.call('HSET', key, 'status', 'FAILED', 'error', reason, 'errors', '[' .. entry .. ']',
                  'finished_at', now)
                move(p, id, 'QUEUED', 'FAILED', h[2] or now)
                count_finished(p, now, 0, 1)
                out[#out + 1] = 1
              else
                out[#out + 1] = 0
              end
            end
            flush_indexes()
            return out
            """)
}
