/// The server-side scripts behind every task state change. Each takes a whole batch in
/// ARGV and returns one value per task, so a batch costs one round trip and each task's
/// change is atomic.
///
/// Each call works on one shard of the tasks (see ``RedisKeys``): it declares the shard's
/// `tasks`, `counts`, `expiry`, `finished` and `types` as KEYS, and ARGV starts with the
/// shard's key prefixes (task hash, status index, stats, scheduled), so no script spells a key name and,
/// on a Redis Cluster, every key a call touches carries the shard's hash tag (one slot).
/// Then come the script's own arguments.
///
/// Every script is safe to replay: `RedisClient` sends a pipeline again after a broken
/// connection, and a call that had already run must then change nothing more.
///
/// Retention: a task that becomes terminal gets a member in `expiry`, scored by the end of
/// its retention. Every script that writes tasks first prunes what is due (at most a few
/// times its own batch size, so the pruning keeps pace with the writing): the record, its
/// index entries and its count go together, so listings and counts never show a task that
/// is gone and an id is "queued once" for as long as its record is kept.
enum TaskScripts {

    /// Shared helpers, prepended to each script.
    private static let prelude = """
        local K = { tasks = KEYS[1], counts = KEYS[2], expiry = KEYS[3], finished = KEYS[4], types = KEYS[5],
          task = ARGV[1], index = ARGV[2], stats = ARGV[3], scheduled = ARGV[4] }
        local A = 5  -- the script's own first argument
        -- Index changes are collected per key and written with one ZADD/ZREM per key at
        -- the end of the script, counter changes with one HINCRBY per field: per-member
        -- calls cost Redis several times more CPU.
        local zadds, zrems, counts, type_counts = {}, {}, {}, {}
        local function add_later(key, score, member)
          local list = zadds[key]
          if not list then list = {}; zadds[key] = list end
          list[#list + 1] = score
          list[#list + 1] = member
        end
        local function remove_later(key, member)
          local list = zrems[key]
          if not list then list = {}; zrems[key] = list end
          list[#list + 1] = member
        end
        -- unpack() is bounded by Lua's C stack: 4,000 arguments per call stays well inside it.
        local function chunked(command, key, list)
          for i = 1, #list, 4000 do redis.call(command, key, unpack(list, i, math.min(i + 3999, #list))) end
        end
        local function flush_indexes()
          for key, list in pairs(zrems) do chunked('ZREM', key, list) end
          for key, list in pairs(zadds) do chunked('ZADD', key, list) end
          for status, delta in pairs(counts) do
            if delta ~= 0 then redis.call('HINCRBY', K.counts, status, delta) end
          end
          for type, delta in pairs(type_counts) do
            if delta ~= 0 then redis.call('HINCRBY', K.types, type, delta) end
          end
          zadds, zrems, counts, type_counts = {}, {}, {}, {}
        end
        -- Every status is counted (one HINCRBY per status per batch); only the small,
        -- operational ones are also listed: PROCESSING (in flight, for the orphan check) and
        -- FAILED and CANCELLED (to look into). QUEUED and SUCCESS are listed by walking `tasks`,
        -- since a zset member added and removed per task was most of Redis's work per task.
        local listed = { PROCESSING = true, FAILED = true, CANCELLED = true }
        local function move(id, from, to, score)
          if from then
            counts[from] = (counts[from] or 0) - 1
            if listed[from] then remove_later(K.index .. from, id) end
          end
          counts[to] = (counts[to] or 0) + 1
          if listed[to] then add_later(K.index .. to, score, id) end
        end
        local function terminal(status) return status == 'SUCCESS' or status == 'FAILED' or status == 'CANCELLED' end
        -- A type is counted, not indexed: a listing by type walks `tasks` and checks each
        -- id's type, as for QUEUED and SUCCESS.
        local function index_new(id, type, score, status)
          add_later(K.tasks, score, id)
          type_counts[type] = (type_counts[type] or 0) + 1
          move(id, nil, status, score)
        end
        -- A terminal task is kept until `until_ms`, then pruned.
        local function keep_until(id, type, status, until_ms)
          add_later(K.expiry, until_ms, status .. '\\0' .. type .. '\\0' .. id)
        end
        -- An `expiry` member's status, type and id.
        local function expiry_parts(member)
          local a = string.find(member, '\\0', 1, true)
          local b = string.find(member, '\\0', a + 1, true)
          return string.sub(member, 1, a - 1), string.sub(member, a + 1, b - 1), string.sub(member, b + 1)
        end
        -- Deletes the terminal tasks of these `expiry` members, with their index entries and
        -- counts. Members are `<status>\\0<type>\\0<id>`, so nothing is read per task.
        local function forget(due)
          if #due == 0 then return end
          local records = {}
          for _, member in ipairs(due) do
            local status, type, id = expiry_parts(member)
            remove_later(K.tasks, id)
            type_counts[type] = (type_counts[type] or 0) - 1
            if listed[status] then remove_later(K.index .. status, id) end
            counts[status] = (counts[status] or 0) - 1
            records[#records + 1] = K.task .. id
          end
          chunked('ZREM', K.expiry, due)
          for i = 1, #records, 4000 do redis.call('UNLINK', unpack(records, i, math.min(i + 3999, #records))) end
        end
        -- Deletes up to `limit` tasks whose retention has ended.
        local function prune(now, limit)
          forget(redis.call('ZRANGEBYSCORE', K.expiry, '-inf', now, 'LIMIT', 0, limit))
        end
        -- Per-second counters of finished tasks, for throughput charts (kept an hour), and
        -- the totals ever finished (cancelled tasks only in the totals).
        local function count_finished(now, succeeded, failed, cancelled)
          if cancelled and cancelled > 0 then redis.call('HINCRBY', K.finished, 'CANCELLED', cancelled) end
          if succeeded + failed == 0 then return end
          local key = K.stats .. math.floor(tonumber(now) / 1000)
          if succeeded > 0 then
            redis.call('HINCRBY', key, 'succeeded', succeeded)
            redis.call('HINCRBY', K.finished, 'SUCCESS', succeeded)
          end
          if failed > 0 then
            redis.call('HINCRBY', key, 'failed', failed)
            redis.call('HINCRBY', K.finished, 'FAILED', failed)
          end
          redis.call('EXPIRE', key, 3600)
        end
        local function append_json(list, entry)
          if not list or list == '' or list == '[]' then return '[' .. entry .. ']' end
          return string.sub(list, 1, -2) .. ',' .. entry .. ']'
        end
        -- How many expired tasks a call prunes besides its own batch: enough to catch up
        -- after a pause, little enough to keep one call short.
        local function prune_budget(batch) return 2 * batch + 100 end

        """

    /// ARGV: shard prefixes, now, topic ('' for none), then per task: id, type, args,
    /// max_attempts, queued_at, due_at (0 for at once).
    /// Returns 1 when the task is (now) QUEUED, 2 when it is (now) SCHEDULED (due_at is after
    /// now: the caller does not publish it, the scheduler does when it is due, see ``release``),
    /// 0 when the id already exists.
    /// `topic` is kept in the record (`topic`), so the scheduler of that topic publishes it when
    /// it is due, or again when its message was lost (see ``lost``).
    /// Replay-safe: a record with this very queued_at is ours. Which ids exist is read with
    /// one ZMSCORE on `tasks` (every kept record is in it, scored by its queued_at) instead
    /// of one read per task.
    static let queue = RedisScript(
        name: "queue",
        source: prelude + """
            local now, topic = ARGV[A], ARGV[A + 1]
            local first = A + 2
            prune(now, prune_budget((#ARGV - first + 1) / 6))
            flush_indexes()
            local ids = {}
            for i = first, #ARGV, 6 do ids[#ids + 1] = ARGV[i] end
            local existing = {}
            for i = 1, #ids, 4000 do
              local scores = redis.call('ZMSCORE', K.tasks, unpack(ids, i, math.min(i + 3999, #ids)))
              for j = 1, #scores do existing[i + j - 1] = scores[j] end
            end
            local out, added = {}, {}
            for i = first, #ARGV, 6 do
              local id, queued_at, due = ARGV[i], ARGV[i + 4], tonumber(ARGV[i + 5])
              local later = due > tonumber(now)
              local score = existing[#out + 1]
              if score then
                out[#out + 1] = (tonumber(score) ~= tonumber(queued_at) and 0) or (later and 2) or 1
              elseif added[id] then
                out[#out + 1] = 0  -- the same id twice in one batch: the second is a duplicate
              else
                added[id] = true
                local fields = { 'type', ARGV[i + 1], 'args', ARGV[i + 2], 'attempts', 0, 'max_attempts', ARGV[i + 3],
                  'queued_at', queued_at }
                if topic ~= '' then fields[#fields + 1] = 'topic'; fields[#fields + 1] = topic end
                local status = 'QUEUED'
                if later then
                  status = 'SCHEDULED'
                  fields[#fields + 1] = 'due_at'; fields[#fields + 1] = due
                  add_later(K.scheduled .. topic, due, id)
                end
                redis.call('HSET', K.task .. id, 'status', status, unpack(fields))
                index_new(id, ARGV[i + 1], queued_at, status)
                out[#out + 1] = later and 2 or 1
              end
            end
            flush_indexes()
            return out
            """)

    /// ARGV: shard prefixes, now, topic, limit. Moves up to `limit` SCHEDULED tasks of `topic`
    /// that are due (`scheduled:<topic>` score at most now) to QUEUED (`released_at` = now); the caller publishes
    /// them. Returns how many ids were taken from `scheduled` (the caller calls again while
    /// that is `limit`), then per task now QUEUED: id, type, args, max_attempts, queued_at,
    /// topic. An id whose task is no longer SCHEDULED (cancelled, or begun by a worker) is
    /// only taken out of `scheduled:<topic>`.
    /// Not replay-safe on its own: a replayed call finds nothing left to release, so tasks
    /// whose reply was lost stay QUEUED unpublished, which ``lost`` finds and publishes.
    static let release = RedisScript(
        name: "release",
        source: prelude + """
            local now, topic, limit = ARGV[A], ARGV[A + 1], tonumber(ARGV[A + 2])
            local scheduled = K.scheduled .. topic
            local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, limit)
            local out = { #due }
            for _, id in ipairs(due) do
              local key = K.task .. id
              local h = redis.call('HMGET', key, 'status', 'type', 'args', 'max_attempts', 'queued_at', 'topic')
              if h[1] == 'SCHEDULED' then
                redis.call('HSET', key, 'status', 'QUEUED', 'released_at', now)
                move(id, 'SCHEDULED', 'QUEUED', h[5])
                for _, value in ipairs({ id, h[2], h[3], h[4], h[5], h[6] or '' }) do out[#out + 1] = value end
              end
            end
            if #due > 0 then chunked('ZREM', scheduled, due) end
            flush_indexes()
            return out
            """)

    /// ARGV: shard prefixes, now, topic, from_score, skip, to_score, cutoff, limit. Looks at up
    /// to `limit` ids of `tasks` with a queued_at from `from_score` to `to_score` (skipping the
    /// first `skip` of those scored exactly `from_score`, already looked at). A task still
    /// QUEUED for `topic` (or for no topic) that was queued, released or retried before `cutoff`
    /// and not republished yet had its message lost: it gets `republished_at` = now and is
    /// returned to be published again, once.
    /// Returns: the score and skip to go on from, 1 when done (else 0), then per task: id,
    /// type, args, max_attempts, queued_at.
    /// Replay-safe: a task with `republished_at` = now is this call's own and is returned again.
    static let lost = RedisScript(
        name: "lost",
        source: prelude + """
            local now, topic = ARGV[A], ARGV[A + 1]
            local from, skip, to = ARGV[A + 2], tonumber(ARGV[A + 3]), ARGV[A + 4]
            local cutoff, limit = tonumber(ARGV[A + 5]), tonumber(ARGV[A + 6])
            local chunk = redis.call('ZRANGEBYSCORE', K.tasks, from, to, 'WITHSCORES', 'LIMIT', skip, limit)
            local found = {}
            local next_score, next_skip = from, skip
            for i = 1, #chunk, 2 do
              local id, score = chunk[i], chunk[i + 1]
              if score == next_score then next_skip = next_skip + 1 else next_score, next_skip = score, 1 end
              local key = K.task .. id
              local h = redis.call('HMGET', key, 'status', 'topic', 'republished_at', 'released_at', 'requeued_at')
              if h[1] == 'QUEUED' and (not h[2] or h[2] == topic) then
                local last = math.max(tonumber(score), tonumber(h[4]) or 0, tonumber(h[5]) or 0)
                if h[3] == now or (not h[3] and last < cutoff) then
                  if not h[3] then redis.call('HSET', key, 'republished_at', now) end
                  found[#found + 1] = id
                end
              end
            end
            local out = { next_score, next_skip, (#chunk < 2 * limit) and 1 or 0 }
            for _, id in ipairs(found) do
              local h = redis.call('HMGET', K.task .. id, 'type', 'args', 'max_attempts', 'queued_at')
              for _, value in ipairs({ id, h[1], h[2], h[3], h[4] }) do out[#out + 1] = value end
            end
            return out
            """)

    /// ARGV: shard prefixes, now, worker, keep_failed_ms, then per task: id, max_attempts, partition.
    /// Returns per task: n > 0 to run attempt n (now PROCESSING); 0 when the task is
    /// already terminal, or has a cancel request (see ``cancel``) and is now CANCELLED
    /// instead of running again (skip it); -n when all n attempts were used up by workers that
    /// died mid-attempt (the caller fails it for good); 'missing' when there is no record
    /// (published by other means, lost, or expired): the caller registers it with `queue`
    /// and asks again. The type and arguments are not sent: the record has them.
    /// Replay-safe: a task this worker started at this very `now` is this call's own, and
    /// its attempt is answered again instead of being counted twice.
    static let begin = RedisScript(
        name: "begin",
        source: prelude + """
            local now, worker, keep_failed = ARGV[A], ARGV[A + 1], tonumber(ARGV[A + 2])
            local out, cancelled = {}, 0
            for i = A + 3, #ARGV, 3 do
              local id = ARGV[i]
              local key = K.task .. id
              local h = redis.call('HMGET', key, 'status', 'attempts', 'max_attempts', 'queued_at', 'worker', 'started_at',
                'cancel_requested', 'type')
              local status = h[1]
              if not status then
                out[#out + 1] = 'missing'
              elseif terminal(status) then
                out[#out + 1] = 0
              elseif status == 'PROCESSING' and h[5] == worker and h[6] == now then
                out[#out + 1] = tonumber(h[2])
              elseif h[7] then
                -- Cancelled while it waited for its next attempt: it does not run again.
                redis.call('HSET', key, 'status', 'CANCELLED', 'finished_at', now)
                move(id, status, 'CANCELLED', h[4] or now)
                keep_until(id, h[8] or '', 'CANCELLED', tonumber(now) + keep_failed)
                cancelled = cancelled + 1
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
                  if status ~= 'PROCESSING' then move(id, status, 'PROCESSING', h[4]) end
                  out[#out + 1] = attempts
                end
              end
            end
            count_finished(now, 0, 0, cancelled)
            flush_indexes()
            return out
            """)

    /// ARGV: shard prefixes, now, worker, keep_succeeded_ms, keep_failed_ms, then per task: id,
    /// attempt, outcome, payload, logs, progress.
    /// outcome: `S` success (payload = result JSON), `R` a failed attempt that will be
    /// retried, `F` the final failure (payload = error text); for a task with a cancel
    /// request (see ``cancel``) both `R` and `F` end it CANCELLED. logs: a JSON array of
    /// lines to append, or ''. progress: a number, or ''.
    /// Returns 1 when written, 0 when stale: the task is already terminal, or another
    /// worker has started a later attempt (a worker that was frozen must not write over it).
    /// Replay-safe: an outcome this worker wrote at this very `now` for this attempt
    /// (`outcome_at`) is answered 1 again, without a second error entry or log.
    static let finish = RedisScript(
        name: "finish",
        source: prelude + """
            local now, worker = ARGV[A], ARGV[A + 1]
            local keep = { SUCCESS = tonumber(ARGV[A + 2]), FAILED = tonumber(ARGV[A + 3]), CANCELLED = tonumber(ARGV[A + 3]) }
            local first = A + 4
            local out, seen = {}, {}
            local succeeded, failed, cancelled = 0, 0, 0
            for i = first, #ARGV, 6 do
              local id, attempt, outcome, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
              local key = K.task .. id
              local h = redis.call('HMGET', key, 'status', 'attempts', 'errors', 'queued_at', 'logs', 'type',
                'worker', 'outcome_at', 'cancel_requested')
              local replayed = not seen[id] and h[2] == attempt and h[7] == worker and h[8] == now
              seen[id] = true
              if replayed then
                out[#out + 1] = 1
              elseif terminal(h[1]) or h[2] ~= attempt then
                out[#out + 1] = 0
              else
                -- Every field of the change in one HSET.
                local fields = { 'outcome_at', now }
                local function set(name, value) fields[#fields + 1] = name; fields[#fields + 1] = value end
                if ARGV[i + 4] ~= '' then
                  local lines = string.sub(ARGV[i + 4], 2, -2)
                  if lines ~= '' then set('logs', append_json(h[5], lines)) end
                end
                if ARGV[i + 5] ~= '' then set('progress', ARGV[i + 5]) end
                local final
                if outcome == 'S' then
                  set('status', 'SUCCESS'); set('result', payload); set('finished_at', now)
                  final = 'SUCCESS'
                  succeeded = succeeded + 1
                else
                  local entry = cjson.encode({attempt = tonumber(attempt), worker = worker, error = payload,
                    at = tonumber(now)})
                  set('error', payload); set('errors', append_json(h[3], entry))
                  if h[9] then
                    set('status', 'CANCELLED'); set('finished_at', now)
                    final = 'CANCELLED'
                    cancelled = cancelled + 1
                  elseif outcome == 'F' then
                    set('status', 'FAILED'); set('finished_at', now)
                    final = 'FAILED'
                    failed = failed + 1
                  end
                end
                redis.call('HSET', key, unpack(fields))
                if final then
                  move(id, h[1], final, h[4] or now)
                  keep_until(id, h[6] or '', final, tonumber(now) + keep[final])
                end
                out[#out + 1] = 1
              end
            end
            count_finished(now, succeeded, failed, cancelled)
            prune(now, prune_budget(#out))
            flush_indexes()
            return out
            """)

    /// ARGV: shard prefixes, now, keep_failed_ms, then per task: id, reason. A task whose publish
    /// failed goes from QUEUED to FAILED with the reason. Returns 1 when written.
    static let failUnpublished = RedisScript(
        name: "fail_unpublished",
        source: prelude + """
            local now, keep_failed = ARGV[A], tonumber(ARGV[A + 1])
            local out = {}
            local failed = 0
            for i = A + 2, #ARGV, 2 do
              local id, reason = ARGV[i], ARGV[i + 1]
              local key = K.task .. id
              local h = redis.call('HMGET', key, 'status', 'queued_at', 'type', 'errors')
              if h[1] == 'QUEUED' then
                local entry = cjson.encode({attempt = 0, worker = '', error = reason, at = tonumber(now)})
                redis.call('HSET', key, 'status', 'FAILED', 'error', reason, 'errors', append_json(h[4], entry),
                  'finished_at', now)
                move(id, 'QUEUED', 'FAILED', h[2] or now)
                keep_until(id, h[3] or '', 'FAILED', tonumber(now) + keep_failed)
                failed = failed + 1
                out[#out + 1] = 1
              else
                out[#out + 1] = 0
              end
            end
            count_finished(now, 0, failed)
            flush_indexes()
            return out
            """)

    /// ARGV: shard prefixes, now, keep_failed_ms, then per task: id. Cancels tasks: a QUEUED
    /// or SCHEDULED one becomes CANCELLED (kept like a FAILED one; a SCHEDULED one leaves
    /// `scheduled:<topic>`, so it is never released); a PROCESSING one gets a cancel request
    /// (`cancel_requested`), so ``finish`` ends its attempt CANCELLED unless it succeeds.
    /// Returns per task `cancelled` (it was QUEUED), `unscheduled` (it was SCHEDULED),
    /// `requested`, `missing`, or the (terminal) status it has, unchanged.
    /// Replay-safe: a task this call cancelled has `cancel_requested` = now.
    static let cancel = RedisScript(
        name: "cancel",
        source: prelude + """
            local now, keep_failed = ARGV[A], tonumber(ARGV[A + 1])
            local out, cancelled = {}, 0
            for i = A + 2, #ARGV do
              local id = ARGV[i]
              local key = K.task .. id
              local h = redis.call('HMGET', key, 'status', 'queued_at', 'type', 'cancel_requested', 'topic')
              if not h[1] then
                out[#out + 1] = 'missing'
              elseif h[1] == 'QUEUED' or h[1] == 'SCHEDULED' then
                redis.call('HSET', key, 'status', 'CANCELLED', 'finished_at', now, 'cancel_requested', now)
                move(id, h[1], 'CANCELLED', h[2] or now)
                keep_until(id, h[3] or '', 'CANCELLED', tonumber(now) + keep_failed)
                cancelled = cancelled + 1
                if h[1] == 'SCHEDULED' then
                  remove_later(K.scheduled .. (h[5] or ''), id)
                  out[#out + 1] = 'unscheduled'
                else
                  out[#out + 1] = 'cancelled'
                end
              elseif h[1] == 'PROCESSING' then
                if not h[4] then redis.call('HSET', key, 'cancel_requested', now) end
                out[#out + 1] = 'requested'
              elseif h[1] == 'CANCELLED' and h[4] == now then
                out[#out + 1] = 'cancelled'
              else
                out[#out + 1] = h[1]
              end
            end
            count_finished(now, 0, 0, cancelled)
            flush_indexes()
            return out
            """)

    /// ARGV: shard prefixes, now, then per task: id. Queues a FAILED or CANCELLED task again
    /// under its id: QUEUED, attempts 0, its earlier `errors` and logs kept, its `expiry`
    /// member removed (a queued task is never pruned), its `queued_at` (its score in `tasks`)
    /// unchanged. The caller publishes it again. Returns per task `queued`, `missing`, or the
    /// status it has, unchanged.
    /// Replay-safe: a task this call queued again has `requeued_at` = now.
    static let requeue = RedisScript(
        name: "requeue",
        source: prelude + """
            local now = ARGV[A]
            local out = {}
            for i = A + 1, #ARGV do
              local id = ARGV[i]
              local key = K.task .. id
              local h = redis.call('HMGET', key, 'status', 'queued_at', 'type', 'requeued_at')
              if not h[1] then
                out[#out + 1] = 'missing'
              elseif h[1] == 'FAILED' or h[1] == 'CANCELLED' then
                redis.call('ZREM', K.expiry, h[1] .. '\\0' .. (h[3] or '') .. '\\0' .. id)
                redis.call('HDEL', key, 'result', 'error', 'finished_at', 'started_at', 'worker', 'outcome_at',
                  'cancel_requested', 'progress')
                redis.call('HSET', key, 'status', 'QUEUED', 'attempts', 0, 'requeued_at', now)
                move(id, h[1], 'QUEUED', h[2] or now)
                out[#out + 1] = 'queued'
              elseif h[1] == 'QUEUED' and h[4] == now then
                out[#out + 1] = 'queued'
              else
                out[#out + 1] = h[1]
              end
            end
            flush_indexes()
            return out
            """)

    /// ARGV: shard prefixes, status, type ('' for any), cutoff ('' for none), offset, count.
    /// Deletes, like pruning, the terminal tasks in `status` among `expiry`'s members at
    /// positions offset ..< offset + count whose type matches and whose `finished_at` is at
    /// most the cutoff. Returns { deleted, the offset to go on from (-1 when done) }.
    /// Replay-safe: it reads what is still there.
    static let purge = RedisScript(
        name: "purge",
        source: prelude + """
            local status, type, cutoff = ARGV[A], ARGV[A + 1], tonumber(ARGV[A + 2])
            local offset, count = tonumber(ARGV[A + 3]), tonumber(ARGV[A + 4])
            local members = redis.call('ZRANGE', K.expiry, offset, offset + count - 1)
            local doomed = {}
            for _, member in ipairs(members) do
              local s, t, id = expiry_parts(member)
              if s == status and (type == '' or t == type)
                and (not cutoff or (tonumber(redis.call('HGET', K.task .. id, 'finished_at')) or 0) <= cutoff) then
                doomed[#doomed + 1] = member
              end
            end
            forget(doomed)
            flush_indexes()
            local next = offset + #members - #doomed
            if #members < count then next = -1 end
            return { #doomed, next }
            """)

    /// ARGV: shard prefixes, now, limit. Prunes up to `limit` tasks whose retention has ended;
    /// returns how many tasks are still due after this call (0 when caught up).
    static let prune = RedisScript(
        name: "prune",
        source: prelude + """
            local now, limit = ARGV[A], tonumber(ARGV[A + 1])
            prune(now, limit)
            flush_indexes()
            return redis.call('ZCOUNT', K.expiry, '-inf', now)
            """)
}
