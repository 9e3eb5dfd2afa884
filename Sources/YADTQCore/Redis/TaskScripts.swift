/// The server-side scripts behind every task state change and task listing. Each takes a
/// whole batch in ARGV and returns one value per task, so a batch costs one round trip and
/// each task's change is atomic.
///
/// Layout (see ``RedisKeys/Shard``): a shard keeps every task's record as one packed field of
/// one hash (`records`), so a batch's state change is one `HMGET` and one `HSET` whatever
/// its size; the per-task work left is reading the record's header and splicing the few
/// changed values into it (a `struct` string, see ``TaskRecordCoding``; the rarer changes
/// decode and encode it whole), not a key, a hash and sorted-set members per task. Indexes
/// are kept per batch too: the listing is a list of ids per second of `queued_at`
/// (`bucket:<second>`, one `RPUSH` per batch), expiry a list of ids per second of the
/// retention's end (`expiring:<second>`); only the small statuses have a member per task
/// (PROCESSING in `running`, FAILED and CANCELLED in `index:<STATUS>`). A start writes only
/// the attempt's entry in `running`, not the record (see ``runningEntry``): readers merge it.
///
/// Each call works on one shard: it declares the shard's fixed keys as KEYS, and ARGV starts
/// with the prefixes of the shard's key families, so no script spells a key name and, on a
/// Redis Cluster, every key a call touches carries the shard's hash tag (one slot).
///
/// Every writing script but ``release`` (see there) is safe to replay: `RedisClient` sends a
/// pipeline again after a broken connection, and a call that had already run must then
/// change nothing more.
///
/// Retention: a task that becomes terminal gets its `expires_at` and an entry in the list
/// of its second. Every script that writes tasks first prunes what is due (at most a few
/// times its own batch size, so the pruning keeps pace with the writing): the record, its
/// index entries and its counts go together, so listings and counts never show a task that
/// is gone and an id is "queued once" for as long as its record is kept.
enum TaskScripts {

    /// KEYS and the first ARGV of every task script call.
    static let keysAndPrefixes = """
        -- ARGV, KEYS and tonumber are globals: each use would look them up in the globals table,
        -- and the scripts use them several times per task.
        local ARGV, KEYS, tonumber = ARGV, KEYS, tonumber
        local K = { records = KEYS[1], counts = KEYS[2], finished = KEYS[3], types = KEYS[4], running = KEYS[5],
          buckets = KEYS[6], live = KEYS[7], expiring = KEYS[8], resent = KEYS[9],
          index = ARGV[1], stats = ARGV[2], bucket = ARGV[3], expiring_at = ARGV[4], scheduled = ARGV[5] }
        local A = 6  -- the script's own first argument

        """

    /// The format of an entry of `running`, shared by every task script and the monitor's
    /// orphan check; ``TaskRecordCoding`` reads the same.
    static let runningEntry = """
        -- The library functions called for every task, as locals: a global costs two table
        -- lookups at each call.
        local sub, byte, struct_pack, struct_unpack = string.sub, string.byte, struct.pack, struct.unpack
        -- A task in flight (PROCESSING) has an entry in `running`: its attempt, partition and
        -- started_at, then its worker. `begin` writes only this entry, not the record: while
        -- it is there, its values stand for the record's (read() merges them), and the change
        -- that ends the task's PROCESSING removes it.
        local ENTRY = '>I4i4d'
        local ENTRY_WORKER = 17  -- where the worker starts
        local function running_entry(attempt, partition, started_at, worker)
          return struct_pack(ENTRY .. 'c0', attempt, partition, started_at, worker)
        end
        local function entry_worker(entry) return sub(entry, ENTRY_WORKER) end

        """

    /// The record format, shared by every script; ``TaskRecordCoding`` reads the same.
    static let recordCoding = runningEntry + """
        -- A record (version 3): version, status code, attempts, partition (-1: none), started_at,
        -- finished_at, outcome_at, expires_at, max_attempts, cancel_requested, queued_at (ms;
        -- 0: none), then worker, result, type, args, topic (strings; '': none), each behind its
        -- length; then, only when one of them is set, the tail: requeued_at, due_at,
        -- released_at, republished_at, then error, errors, logs, progress. A usual task sets
        -- nothing of the tail, and Redis's Lua hashes every byte of every string a script reads
        -- or makes, so the record a usual task carries is as short as it can be. What a start
        -- and a success change comes first, so a reader merging a start's entry and a success
        -- in its usual case splice the new values into the packed record (see with_entry and
        -- succeeded_record) instead of decoding and encoding all of it.
        local VERSION = 3
        local HEADER = '>BBI4i4ddddI4dd'
        local FORMAT = HEADER .. 'I4c0I4c0I4c0I4c0I4c0'
        local TAIL = '>ddddI4c0I4c0I4c0I4c0'
        -- Version 2, which earlier builds wrote: the same header, the tail's four times, then
        -- every string (worker, result, error, errors, logs, progress, type, args, topic).
        local FORMAT_2 = HEADER .. 'dddd' .. string.rep('I4c0', 9)
        -- A decoded record is a table in version 2's order, whatever version it was read from.
        local F = { status = 2, attempts = 3, partition = 4, started_at = 5, finished_at = 6, outcome_at = 7,
          expires_at = 8, max_attempts = 9, cancel_requested = 10, queued_at = 11, requeued_at = 12, due_at = 13,
          released_at = 14, republished_at = 15, worker = 16, result = 17, error = 18, errors = 19, logs = 20,
          progress = 21, type = 22, args = 23, topic = 24 }
        -- Byte offsets (1-based, for string.sub and struct.unpack): started_at, expires_at,
        -- max_attempts and queued_at (the same in both versions), and the worker's length, the
        -- first string.
        local AT_STARTED, AT_EXPIRES, AT_MAX, AT_QUEUED, AT_STRINGS = 11, 35, 43, 55, 63
        local STATUS = { [0] = 'QUEUED', 'PROCESSING', 'SUCCESS', 'FAILED', 'CANCELLED', 'SCHEDULED' }
        local CODE = {}
        for code = 0, #STATUS do CODE[STATUS[code]] = code end
        local function decode(packed)
          if byte(packed) == 2 then
            local r = { struct_unpack(FORMAT_2, packed) }
            r[25] = nil  -- unpack's next position
            r[F.status] = STATUS[r[F.status]]
            return r
          end
          local version, code, attempts, partition, started_at, finished_at, outcome_at, expires_at, max_attempts,
            cancel_requested, queued_at, worker, result, type, args, topic, at_tail = struct_unpack(FORMAT, packed)
          local r = { version, STATUS[code], attempts, partition, started_at, finished_at, outcome_at, expires_at,
            max_attempts, cancel_requested, queued_at, 0, 0, 0, 0, worker, result, '', '', '', '', type, args, topic }
          if at_tail <= #packed then
            r[12], r[13], r[14], r[15], r[18], r[19], r[20], r[21] = struct_unpack(TAIL, packed, at_tail)
          end
          return r
        end
        local function encode(r)
          local packed = struct_pack(FORMAT, VERSION, CODE[r[2]], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
            r[11], #r[16], r[16], #r[17], r[17], #r[22], r[22], #r[23], r[23], #r[24], r[24])
          if r[12] == 0 and r[13] == 0 and r[14] == 0 and r[15] == 0
            and r[18] == '' and r[19] == '' and r[20] == '' and r[21] == '' then
            return packed
          end
          return packed .. struct_pack(TAIL, r[12], r[13], r[14], r[15], #r[18], r[18], #r[19], r[19], #r[20], r[20],
            #r[21], r[21])
        end
        -- The record `packed` in this version: the splices below read and write only this one.
        local function current(packed)
          if byte(packed) == VERSION then return packed end
          return encode(decode(packed))
        end
        -- Lengths packed as the record holds them ('>I4'), each packed once per call: the args
        -- and results of a batch mostly share a few lengths, and a lookup costs a tenth of a pack.
        local packed_lengths = {}
        local function packed_length(n)
          local text = struct_pack('>I4', n)
          packed_lengths[n] = text
          return text
        end
        -- A length-prefixed string, as the record holds it.
        local function lp(text) return (packed_lengths[#text] or packed_length(#text)) .. text end
        -- A new QUEUED record is its header and two empty strings (no worker, no result yet),
        -- which depend only on max_attempts and queued_at, then lp(type), lp(args) and
        -- lp(topic), and no tail. The tasks of a batch mostly share the first part, so `queue`
        -- packs it once per distinct shape (see there).
        local NO_OUTCOME = string.rep(lp(''), 2)
        local function new_header(max_attempts, queued_at)
          return struct_pack(HEADER, VERSION, 0, 0, -1, 0, 0, 0, 0, max_attempts, 0, queued_at) .. NO_OUTCOME
        end
        local function new_record(status, type, args, max_attempts, queued_at, due_at, topic)
          return { VERSION, status, 0, -1, 0, 0, 0, 0, max_attempts, 0, queued_at, 0, due_at, 0, 0,
            '', '', '', '', '', '', type, args, topic }
        end
        -- What finish checks outside its usual case: status code, attempts, started_at,
        -- outcome_at and the worker's length, of a record in this version (see current). Short
        -- reads at their offsets: struct skips a byte per format character, so one format
        -- spelling out the gaps took three times as long.
        local function checked(packed)
          local code, attempts, _, started_at, _, outcome_at = struct_unpack('>BI4i4ddd', packed, 2)
          return code, attempts, started_at, outcome_at, (struct_unpack('>I4', packed, AT_STRINGS))
        end
        -- Whether the record `packed`, in this version, whose worker is `worker_length` long,
        -- names `worker`.
        local function worker_is(packed, worker_length, worker)
          return worker_length == #worker and sub(packed, AT_STRINGS + 4, AT_STRINGS + 3 + worker_length) == worker
        end
        -- An entry in `running` starts with the attempt, partition and started_at packed as
        -- the record's header packs them (bytes 3 to 18), so the two splices below copy those
        -- bytes instead of unpacking and packing them: every value unpacked or packed, and
        -- every string made, costs Lua tens of nanoseconds, and these run once per task.
        local PROCESSING_HEAD, SUCCESS_HEAD = string.char(VERSION, CODE.PROCESSING), string.char(VERSION, CODE.SUCCESS)
        -- The first two bytes of a record a success can be spliced into: this version, and a
        -- status that is not terminal. One lookup where two calls would read the two bytes.
        local SPLICEABLE = {}
        for _, status in ipairs({ 'QUEUED', 'PROCESSING', 'SCHEDULED' }) do
          SPLICEABLE[string.char(VERSION, CODE[status])] = true
        end
        -- The stored record `packed` with the `running` entry of its attempt in flight merged
        -- in: PROCESSING, with the entry's attempt, partition, started_at and worker.
        local function with_entry(packed, entry)
          packed = current(packed)
          local worker_length = struct_unpack('>I4', packed, AT_STRINGS)
          return PROCESSING_HEAD .. sub(entry, 1, 16) .. sub(packed, 19, AT_STRINGS - 1)
            .. lp(entry_worker(entry)) .. sub(packed, AT_STRINGS + 4 + worker_length)
        end
        -- The stored record `packed` (SPLICEABLE) SUCCESS with `result`: the attempt whose entry
        -- starts with `entry_head` (its first 16 bytes) by the worker whose lp() is `worker_lp`;
        -- `times` packs finished_at, outcome_at and expires_at ('>ddd', the same for a whole call).
        local function succeeded_record(packed, entry_head, times, worker_lp, result)
          -- Before its first attempt a record names no worker: the result's length follows.
          local worker_length, next_length = struct_unpack('>I4I4', packed, AT_STRINGS)
          local at_result = AT_STRINGS + 4 + worker_length
          local result_length = worker_length == 0 and next_length or struct_unpack('>I4', packed, at_result)
          return SUCCESS_HEAD .. entry_head .. times .. sub(packed, AT_MAX, AT_STRINGS - 1)
            .. worker_lp .. (packed_lengths[#result] or packed_length(#result)) .. result
            .. sub(packed, at_result + 4 + result_length)
        end
        local function terminal_code(code) return code == 2 or code == 3 or code == 4 end
        -- unpack() is bounded by Lua's C stack: 4,000 arguments per call stays well inside it.
        local function chunked(command, key, list)
          for i = 1, #list, 4000 do redis.call(command, key, unpack(list, i, math.min(i + 3999, #list))) end
        end
        -- The ids in ARGV from `first` on, one every `stride` arguments.
        local function ids_from(first, stride)
          local ids, n = {}, 0
          for i = first, #ARGV, stride do n = n + 1; ids[n] = ARGV[i] end
          return ids
        end
        -- What a call's tasks mostly share, in long runs (a queue's shapes, a begin's
        -- partitions, a finish's outcomes), comes as runs rather than an argument per task:
        -- ARGV[at] is how many runs, then each run's length and text. Returns each task's
        -- value, in order (read(text), once per distinct text), how many, and where ARGV goes on.
        local function runs_at(at, read)
          local values, n, seen = {}, 0, {}
          local last = at + 2 * tonumber(ARGV[at])
          for r = at + 1, last, 2 do
            local text = ARGV[r + 1]
            local value = seen[text]
            if value == nil then value = read(text); seen[text] = value end
            for _ = 1, tonumber(ARGV[r]) do n = n + 1; values[n] = value end
          end
          return values, n, last + 1
        end
        -- A call's answers, one per task; when every task got the same answer, that answer
        -- once, which `TaskStore` reads as every task's: a usual batch's answers are all
        -- alike, and each element of a reply costs Redis its conversion and its writing.
        local function answers(out)
          local first = out[1]
          for k = 2, #out do
            if out[k] ~= first then return out end
          end
          return { first }
        end
        -- Stops a call whose runs do not cover its tasks one to one (a caller's bug).
        local function check_runs(script, covered, tasks)
          if covered ~= tasks then error(script .. ': the runs cover ' .. covered .. ' tasks, not ' .. tasks) end
        end
        -- The values of the fields `ids` of the hash `key` (false for none), one HMGET per 4,000.
        local function hmget(key, ids)
          if #ids <= 4000 then return #ids == 0 and {} or redis.call('HMGET', key, unpack(ids)) end
          local out = {}
          for i = 1, #ids, 4000 do
            local values = redis.call('HMGET', key, unpack(ids, i, math.min(i + 3999, #ids)))
            for j = 1, #values do out[i + j - 1] = values[j] end
          end
          return out
        end
        -- The records of `ids` as stored, and their `running` entries (false for none).
        local function read_stored(ids) return hmget(K.records, ids), hmget(K.running, ids) end
        -- The packed records of `ids` as they stand (false for an unknown id): a task in
        -- flight with its attempt's entry merged in.
        local function read(ids)
          local records, entries = read_stored(ids)
          for k = 1, #ids do
            local entry = entries[k]
            if entry and records[k] then records[k] = with_entry(records[k], entry) end
          end
          return records
        end
        local function second(ms) return math.floor(ms / 1000) end
        -- The decoded record `r` when it belongs to the listing bucket of second `s`, else
        -- nil: an id pruned and then queued again is still in its old bucket until that is
        -- rewritten or deleted, but its record is the new task's, listed in its own second.
        local function queued_in(queued_at, s) return second(queued_at) == tonumber(s) end
        local function listed_in(r, s) return queued_in(r[F.queued_at], s) and r or nil end

        """

    /// The listing walk shared by the reading scripts.
    static let listingWalk = keysAndPrefixes + recordCoding + """
        -- Walks the kept tasks newest first (by listing second, then queueing order), starting
        -- below position `i` of second `s` (s = nil: at the newest task). Calls
        -- visit(id, record, s, position, packed, last) for each (last: nothing older is
        -- left); stops when it returns true or after `budget` steps (an id looked at, or a
        -- move to an older second). Returns where it stopped (the next walk starts below it),
        -- or nil when nothing older is left.
        -- A cursor's `s` and `i` are a client's to send, so whatever they say, every step of
        -- the loop counts against the budget: a call stays as short as a page's.
        local function walk(s, i, budget, visit)
          local function older_than(second)
            local found = redis.call('ZREVRANGEBYSCORE', K.buckets, '(' .. second, '-inf', 'LIMIT', 0, 1)
            return found[1] and tonumber(found[1])
          end
          local function length(second) return redis.call('LLEN', K.bucket .. second) end
          if not s then
            local newest = redis.call('ZREVRANGE', K.buckets, 0, 0)
            if #newest == 0 then return nil end
            s = tonumber(newest[1])
            i = length(s)
          else
            -- A position past the end of its second's list (the bucket was rewritten shorter,
            -- or the cursor was made up) reads as the end of that list, so every range read
            -- below returns ids: read from so far up, the ranges were empty, counted nothing,
            -- and moved down 500 at a time for as long as the number was large, with Redis
            -- busy for every client. A second without a list reads as the end of an empty one.
            i = math.min(i, length(s))
          end
          local older = older_than(s)
          local scanned = 0
          while scanned < budget do
            if i <= 0 then
              if not older then return nil end
              s, older = older, older_than(older)
              i = length(s)
              -- A move counts as a step: a run of seconds without ids (a cursor's second far
              -- from any bucket, buckets being emptied) is then not walked all in one call.
              scanned = scanned + 1
            else
              local from = math.max(0, i - math.min(500, budget - scanned))
              local ids = redis.call('LRANGE', K.bucket .. s, from, i - 1)
              local packed = read(ids)
              for j = #ids, 1, -1 do
                i = from + j - 1
                scanned = scanned + 1
                local r = packed[j] and listed_in(decode(packed[j]), s)
                if r and visit(ids[j], r, s, i, packed[j], i == 0 and not older) then
                  if i == 0 and not older then return nil end
                  return s, i
                end
              end
              i = from
            end
          end
          if i <= 0 and not older then return nil end
          return s, i
        end

        """

    /// Shared helpers of the writing scripts.
    private static let prelude = keysAndPrefixes + recordCoding + """
        -- Writes are collected and sent with one command per key at the end of the script:
        -- per-task calls cost Redis several times more CPU than the work itself.
        local writes, removed, counts, type_counts, listed, expiring = {}, {}, {}, {}, {}, {}
        local running_set, running_del, index_add, index_del, live_delta = {}, {}, {}, {}, {}
        local scheduled_add, scheduled_del = {}, {}
        -- Score-member pairs for `resent` (see ``RedisKeys/Shard/resent``), and how many values.
        local resent_add, n_resent_add = {}, 0
        -- The lengths of the lists every task grows, kept by hand: Lua's # searches for a
        -- table's end, which made an append cost three times as much.
        local n_writes, n_removed, n_running_set, n_running_del = 0, 0, 0, 0
        -- Appends one or two values to the list of `key` in `list_table`.
        local function add(list_table, key, a, b)
          local list = list_table[key]
          if not list then list = {}; list_table[key] = list end
          local n = #list
          list[n + 1] = a
          if b ~= nil then list[n + 2] = b end
        end
        -- `writes` and `running_set` are flat field-value lists, sent as they are.
        local function write_packed(id, packed)
          writes[n_writes + 1], writes[n_writes + 2] = id, packed
          n_writes = n_writes + 2
        end
        local function write(id, r) write_packed(id, encode(r)) end
        local function set_running(id, entry)
          running_set[n_running_set + 1], running_set[n_running_set + 2] = id, entry
          n_running_set = n_running_set + 2
        end
        local function unset_running(id)
          n_running_del = n_running_del + 1
          running_del[n_running_del] = id
        end
        -- Only the small, operational statuses have a member per task: PROCESSING (in flight,
        -- for the orphan check) and FAILED and CANCELLED (to look into).
        local function move(id, from, to, r)
          if from then
            counts[from] = (counts[from] or 0) - 1
            if from == 'PROCESSING' then unset_running(id) end
            if from == 'FAILED' or from == 'CANCELLED' then add(index_del, from, id) end
          end
          counts[to] = (counts[to] or 0) + 1
          if to == 'PROCESSING' then
            set_running(id, running_entry(r[F.attempts], r[F.partition], r[F.started_at], r[F.worker]))
          end
          if to == 'FAILED' or to == 'CANCELLED' then add(index_add, to, r[F.queued_at], id) end
          -- SCHEDULED tasks wait in their topic's `scheduled:<topic>`, by due time.
          if from == 'SCHEDULED' then add(scheduled_del, r[F.topic], id) end
          if to == 'SCHEDULED' then add(scheduled_add, r[F.topic], r[F.due_at], id) end
        end
        -- Task `id`'s message was (last) sent again at `at` (ms), with its queued_at older.
        local function sent_again(id, at)
          resent_add[n_resent_add + 1], resent_add[n_resent_add + 2] = at, id
          n_resent_add = n_resent_add + 2
        end
        local function list_new(id, r)
          type_counts[r[F.type]] = (type_counts[r[F.type]] or 0) + 1
          add(listed, second(r[F.queued_at]), id)
          move(id, nil, r[F.status], r)
        end
        -- A terminal task is kept until `until_ms`, then pruned.
        local function keep_until(id, r, until_ms)
          r[F.expires_at] = until_ms
          add(expiring, second(until_ms), id)
        end
        -- Forgets these tasks (`records` packed, as read() gives them): their record, index
        -- entries and counts. Every task kept for a while ends here, so it reads only the
        -- status, queued_at and type at their offsets instead of decoding each record.
        -- A task is forgotten once per call, however often it is named: an id can be listed
        -- twice to expire (failed again soon after an operator's retry) or in two listing
        -- seconds (deleted, then queued again), and was uncounted twice.
        local forgotten = {}
        local function forget(ids, records)
          for k = 1, #ids do
            local id = ids[k]
            if not forgotten[id] then
              forgotten[id] = true
              local packed = current(records[k])
              local status = STATUS[byte(packed, 2)]
              local at_result = AT_STRINGS + 4 + struct_unpack('>I4', packed, AT_STRINGS)
              local at_type = at_result + 4 + struct_unpack('>I4', packed, at_result)
              local type = sub(packed, at_type + 4, at_type + 3 + struct_unpack('>I4', packed, at_type))
              counts[status] = (counts[status] or 0) - 1
              type_counts[type] = (type_counts[type] or 0) - 1
              if status == 'FAILED' or status == 'CANCELLED' then add(index_del, status, id) end
              local s = second(struct_unpack('>d', packed, AT_QUEUED))
              live_delta[s] = (live_delta[s] or 0) - 1
              n_removed = n_removed + 1
              removed[n_removed] = id
            end
          end
        end
        -- A listing bucket whose tasks are mostly gone is rewritten with the ones still kept,
        -- so tasks kept longer (failures) do not keep their second's expired ids listed.
        -- Pruning asks for that a minute later (it sets `tidy_at`, a second; nil: at once, as
        -- purge wants), by a member 'tidy:<second>' of `expiring` due then: the tasks of one
        -- second mostly expire within moments of each other, and a bucket that empties in the
        -- meantime is deleted without being read, where reading it at once cost a read per task.
        local TIDY, TIDY_DELAY = 'tidy:', 60
        local tidy_at
        -- Forgets the listing bucket of second `s`: its list, its second and its count.
        local function drop_bucket(s)
          redis.call('DEL', K.bucket .. s)
          redis.call('ZREM', K.buckets, s)
          redis.call('HDEL', K.live, s)
        end
        -- Rewrites the listing bucket of second `s` with the ids still kept; returns how many
        -- ids it read.
        local function rewrite_bucket(s)
          local key = K.bucket .. s
          local ids = redis.call('LRANGE', key, 0, -1)
          local kept, n = {}, 0
          local records = #ids > 0 and hmget(K.records, ids) or {}
          for k = 1, #ids do
            -- (queued_at is where both record versions keep it, and no entry in `running` changes it.)
            if records[k] and queued_in(struct_unpack('>d', records[k], AT_QUEUED), s) then
              n = n + 1
              kept[n] = ids[k]
            end
          end
          if n == 0 then
            -- Nothing of the second is kept although `live` counted some (a count that fell
            -- behind its list): the second goes as with its last task, not listed for ever.
            drop_bucket(s)
          else
            redis.call('DEL', key)
            chunked('RPUSH', key, kept)
            redis.call('HSET', K.live, s, n)
          end
          return #ids
        end
        local function tidy_bucket(s, live)
          local key = K.bucket .. s
          if live <= 0 then
            drop_bucket(s)
            return
          end
          local length = redis.call('LLEN', key)
          if length < 64 or live * 4 > length then return end
          if tidy_at then
            redis.call('ZADD', K.expiring, 'NX', tidy_at, TIDY .. s)
          else
            rewrite_bucket(s)
          end
        end
        -- Lists `ids` as retained until second `s` (see prune).
        local function push_expiring(s, ids)
          chunked('RPUSH', K.expiring_at .. s, ids)
          redis.call('ZADD', K.expiring, s, s)
        end
        local function flush()
          if n_writes > 0 then chunked('HSET', K.records, writes) end
          if n_removed > 0 then chunked('HDEL', K.records, removed) end
          if n_running_set > 0 then chunked('HSET', K.running, running_set) end
          if n_running_del > 0 then chunked('HDEL', K.running, running_del) end
          for status, list in pairs(index_del) do chunked('ZREM', K.index .. status, list) end
          for status, list in pairs(index_add) do chunked('ZADD', K.index .. status, list) end
          for topic, list in pairs(scheduled_del) do chunked('ZREM', K.scheduled .. topic, list) end
          for topic, list in pairs(scheduled_add) do chunked('ZADD', K.scheduled .. topic, list) end
          if n_resent_add > 0 then chunked('ZADD', K.resent, resent_add) end
          for s, ids in pairs(listed) do
            chunked('RPUSH', K.bucket .. s, ids)
            redis.call('ZADD', K.buckets, s, s)
            redis.call('HINCRBY', K.live, s, #ids)
          end
          for s, delta in pairs(live_delta) do tidy_bucket(s, redis.call('HINCRBY', K.live, s, delta)) end
          for s, ids in pairs(expiring) do push_expiring(s, ids) end
          for status, delta in pairs(counts) do
            if delta ~= 0 then redis.call('HINCRBY', K.counts, status, delta) end
          end
          -- A type none of whose tasks is kept any more loses its field: type names are the
          -- producers' to choose, so the fields of the types of the past would pile up.
          for type, delta in pairs(type_counts) do
            if delta ~= 0 and redis.call('HINCRBY', K.types, type, delta) == 0 then redis.call('HDEL', K.types, type) end
          end
          writes, removed, counts, type_counts, listed, expiring = {}, {}, {}, {}, {}, {}
          running_set, running_del, index_add, index_del, live_delta = {}, {}, {}, {}, {}
          scheduled_add, scheduled_del, resent_add = {}, {}, {}
          n_writes, n_removed, n_running_set, n_running_del, n_resent_add = 0, 0, 0, 0, 0
        end
        -- Forgets the tasks listed as retained until second `s` whose retention has ended by
        -- `now`, up to `limit` of them; returns how many ids it took from the list.
        local function prune_second(s, now, limit)
          local key = K.expiring_at .. s
          -- LRANGE and LTRIM, not LPOP with a count: that needs Redis 6.2, and YADTQ runs on 5.
          local ids = redis.call('LRANGE', key, 0, limit - 1)
          redis.call('LTRIM', key, limit, -1)
          if redis.call('EXISTS', key) == 0 then redis.call('ZREM', K.expiring, s) end
          local doomed, records, n = {}, {}, 0
          local packed = read(ids)
          for k = 1, #ids do
            if packed[k] and terminal_code(byte(packed[k], 2)) then
              local expires_at = struct_unpack('>d', packed[k], AT_EXPIRES)
              if expires_at > 0 and expires_at <= now then
                n = n + 1
                doomed[n], records[n] = ids[k], packed[k]
              end
            end
          end
          forget(doomed, records)
          return #ids
        end
        -- Deletes up to about `limit` tasks whose retention has ended by `now`, and rewrites
        -- the listing buckets due to be tidied. Only the seconds before now's are taken: an
        -- entry is popped once, so its task must be due. A task queued again since (its
        -- expires_at is 0 or later) is left alone.
        local function prune(now, limit)
          local done = 0
          tidy_at = second(now) + TIDY_DELAY
          local due = redis.call('ZRANGEBYSCORE', K.expiring, '-inf', second(now) - 1, 'LIMIT', 0, 32)
          for _, s in ipairs(due) do
            if done >= limit then break end
            if sub(s, 1, #TIDY) == TIDY then
              redis.call('ZREM', K.expiring, s)
              done = done + rewrite_bucket(sub(s, #TIDY + 1))
            else
              done = done + prune_second(s, now, limit - done)
            end
          end
        end
        -- Per-second counters of finished tasks, for throughput charts (kept an hour), and
        -- the totals ever finished (cancelled tasks only in the totals).
        local function count_finished(now, succeeded, failed, cancelled)
          if cancelled and cancelled > 0 then redis.call('HINCRBY', K.finished, 'CANCELLED', cancelled) end
          if succeeded + failed == 0 then return end
          local key = K.stats .. second(now)
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
          if list == '' or list == '[]' then return '[' .. entry .. ']' end
          return sub(list, 1, -2) .. ',' .. entry .. ']'
        end
        -- How many expired tasks a call prunes besides its own batch: enough to catch up
        -- after a pause, little enough to keep one call short.
        local function prune_budget(batch) return 2 * batch + 100 end

        """

    /// ARGV: shard prefixes, now, topic ('' for none), redelivered, repeats, the tasks' shapes
    /// as runs (see runs_at; a shape is `max_attempts:queued_at:due_at:type`, due_at 0 for at
    /// once; see `TaskStore.queueShape` and `TaskStore.runs`), then per task: id, args.
    /// repeats: '1' when some id occurs more than once in the call (see `TaskStore.perShard`).
    /// redelivered: '1' when the tasks are messages a worker got for tasks Redis has no record
    /// of (see `TaskStore.begin`), which may be tasks pruned or purged while their offset was
    /// not committed yet: queued again with their old queued_at, such an id may still be in
    /// its second's listing bucket, and is not listed there twice (a bucket is read once per
    /// call and second for it). So for a task written late (below), whose record may have been
    /// pruned before.
    /// Returns per task (or once for all when all are alike: see answers) 1 when the task is
    /// (now) QUEUED, 2 when it is (now) SCHEDULED (due_at is after now: the caller does not
    /// publish it, the scheduler does when it is due, see ``release``), 0 when the id
    /// already exists.
    /// `topic` is kept in the record, so the scheduler of that topic publishes it when it is
    /// due, or again when its message was lost (see ``lost``).
    /// A QUEUED task written late, its queued_at more than ``LostTaskRule/lateWrite`` before
    /// the time of the write (Redis's clock, or `now` if later: a call replayed after an outage
    /// carries the `now` it was made with), goes into `resent` with that time: the lost-task
    /// check may have looked past its queued_at already (see ``lost``). Decided per shape, so
    /// a usual batch pays nothing per task for it.
    /// Replay-safe: a record with this very queued_at, type and args is ours (a publisher's
    /// calls never share a queued_at: see ``TaskPublisher``).
    static let queue = RedisScript(
        name: "queue",
        source: prelude + """
            -- TIME is not deterministic: Redis before 7 replicates the script's effects instead of
            -- the script only when told so before its first write.
            if redis.replicate_commands then redis.replicate_commands() end
            local now, topic = tonumber(ARGV[A]), ARGV[A + 1]
            local redelivered, repeats = ARGV[A + 2] == '1', ARGV[A + 3] == '1'
            local time = redis.call('TIME')
            local written = math.max(now, tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
            local late_before, any_late = written - \(LostTaskRule.lateWrite.inMilliseconds), false
            -- A batch's tasks mostly share one shape (the three numbers and the type every
            -- task would otherwise carry in four arguments), so each distinct shape is read
            -- once per call, with the header of a new record of that shape.
            local function shape_of(text)
              local max_text, queued_text, due_text, type = string.match(text, '^(%-?%d+):(%-?%d+):(%-?%d+):(.*)$')
              if not max_text then
                error('queue: the task shape ' .. text .. ' is not max_attempts:queued_at:due_at:type')
              end
              local max, queued_at, due = tonumber(max_text), tonumber(queued_text), tonumber(due_text)
              local later = due ~= 0 and due > now
              local late = not later and queued_at < late_before
              any_late = any_late or late
              return { max = max, queued_at = queued_at, due = due, later = later, late = late,
                type = type, header = new_header(max, queued_at) .. lp(type) }
            end
            local shapes, n_shapes, first = runs_at(A + 4, shape_of)
            prune(now, prune_budget(n_shapes))
            flush()
            local ids = ids_from(first, 2)
            check_runs('queue', n_shapes, #ids)
            -- Only whether a record exists, and its queued_at, which no entry in `running` changes.
            local existing = hmget(K.records, ids)
            -- added: the ids of this call so far, kept only when some id repeats.
            local out, added, topic_lp = {}, {}, lp(topic)
            -- The listing bucket of the last task queued (its shape's queued_at), and its length.
            local listing_shape, listing, listing_n
            -- Second -> the ids its listing bucket holds, read for the tasks that may be in it.
            local bucket_ids = {}
            local function in_bucket(s, id)
              local set = bucket_ids[s]
              if not set then
                set = {}
                local held = redis.call('LRANGE', K.bucket .. s, 0, -1)
                for i = 1, #held do set[held[i]] = true end
                bucket_ids[s] = set
              end
              return set[id]
            end
            local queued = 0
            for k = 1, #ids do
              local id, args, shape = ids[k], ARGV[first + (k - 1) * 2 + 1], shapes[k]
              if added[id] then
                out[k] = 0  -- the same id twice in one call: the second is a duplicate, replayed or not
              elseif existing[k] then
                if repeats then added[id] = true end
                -- Ours, replayed, only with this very queued_at and the same task: another
                -- submission of the id in the same millisecond (another producer's) is a duplicate.
                local r = struct_unpack('>d', existing[k], AT_QUEUED) == shape.queued_at and decode(existing[k])
                out[k] = (not (r and r[F.type] == shape.type and r[F.args] == args) and 0) or (shape.later and 2) or 1
              else
                if repeats then added[id] = true end
                local type = shape.type
                if shape.later then
                  local r = new_record('SCHEDULED', type, args, shape.max, shape.queued_at, shape.due, topic)
                  write(id, r)
                  list_new(id, r)
                  listing_shape = nil  -- list_new may have grown that bucket: measure it again
                  out[k] = 2
                else
                  -- The usual case, without a record table: the shape's header (with the type)
                  -- and the task's own strings, joined; counted and listed per batch.
                  -- (write_packed, inline: a call per task costs more than its work.)
                  writes[n_writes + 1] = id
                  writes[n_writes + 2] =
                    shape.header .. (packed_lengths[#args] or packed_length(#args)) .. args .. topic_lp
                  n_writes = n_writes + 2
                  type_counts[type] = (type_counts[type] or 0) + 1
                  local s = (redelivered or shape.late) and second(shape.queued_at)
                  if s and in_bucket(s, id) then
                    live_delta[s] = (live_delta[s] or 0) + 1  -- listed already: counted only
                  else
                    if shape ~= listing_shape then
                      s = second(shape.queued_at)
                      listing = listed[s] or {}
                      listed[s], listing_shape, listing_n = listing, shape, #listing
                    end
                    listing_n = listing_n + 1
                    listing[listing_n] = id
                  end
                  queued = queued + 1
                  out[k] = 1
                end
              end
            end
            counts.QUEUED = (counts.QUEUED or 0) + queued
            if any_late then
              for k = 1, #ids do
                if out[k] == 1 and shapes[k].late then sent_again(ids[k], written) end
              end
            end
            flush()
            return answers(out)
            """)

    /// ARGV: shard prefixes, now, topic, limit. Moves up to `limit` SCHEDULED tasks of `topic`
    /// that are due (`scheduled:<topic>` score at most now) to QUEUED (`released_at` = now);
    /// the caller publishes them. Returns how many ids were taken from `scheduled:<topic>`
    /// (the caller calls again while that is `limit`), then per task now QUEUED: id, type,
    /// args, max_attempts, queued_at, topic. An id whose task is no longer SCHEDULED
    /// (cancelled, or begun by a worker) is only taken out of `scheduled:<topic>`.
    /// Not replay-safe on its own: a replayed call finds nothing left to release, so tasks
    /// whose reply was lost stay QUEUED unpublished, which ``lost`` finds and publishes.
    static let release = RedisScript(
        name: "release",
        source: prelude + """
            local now, topic, limit = tonumber(ARGV[A]), ARGV[A + 1], tonumber(ARGV[A + 2])
            local scheduled = K.scheduled .. topic
            local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, limit)
            local out = { #due }
            for k, packed in ipairs(read(due)) do
              local r = packed and decode(packed)
              if r and r[F.status] == 'SCHEDULED' then
                local id = due[k]
                r[F.status] = 'QUEUED'
                r[F.released_at] = now
                move(id, 'SCHEDULED', 'QUEUED', r)
                write(id, r)
                sent_again(id, now)
                for _, value in ipairs({ id, r[F.type], r[F.args], r[F.max_attempts], r[F.queued_at], r[F.topic] }) do
                  out[#out + 1] = value
                end
              end
            end
            -- Every due id leaves the set, also those no longer SCHEDULED.
            if #due > 0 then chunked('ZREM', scheduled, due) end
            flush()
            return out
            """)

    /// ARGV: shard prefixes, now, topic, cursor ('' to start), from, to, cutoff, limit,
    /// processing ('1' when the broker lost its log). Takes the tasks whose message was lost:
    /// those still QUEUED (or PROCESSING, when `processing` is '1') for `topic` (or for no
    /// topic) whose message was last sent (queued, released, retried, republished) before
    /// `cutoff`. Each gets `republished_at` = now and is returned to be published again. It
    /// looks, up to `limit` ids per call, going on from the cursor a previous call returned:
    /// - unless `from` is 0, first at the ids in `resent` scored before `cutoff` (the tasks sent
    ///   again, or written late: their queued_at is older than the queued times looked at).
    ///   An id whose task is no longer QUEUED (started, ended, pruned) leaves it; one whose
    ///   task was sent again after its score gets that time (it leaves the range looked at,
    ///   and comes back into it once that time is before a cutoff); one taken stays, with its
    ///   old score, and gets its new one so at the next look. Ids whose queued_at is from
    ///   `from` to `to` are left to the walk below, so a call takes no task twice.
    /// - then, when `processing` is '1' and `from` is not 0, at the tasks in flight (`running`,
    ///   by `HSCAN`): every PROCESSING task has an entry there, so a look after a lost log
    ///   needs no walk over the queued times before `from` (a task queued then and still
    ///   QUEUED is in `resent`, as an earlier look took it or it was sent again since). Those
    ///   queued from `from` to `to` are left to the walk.
    /// - then at the listing buckets of the seconds from `from` to `to` (ms), oldest first.
    ///   A task taken there goes into `resent`; so does, in a walk from 0 (a takeover, a lost
    ///   log), a task sent again but not lost yet, which a build before `resent` left out of it.
    /// Returns: the cursor to go on from ('' when done), how many ids it looked at, then per
    /// task: id, type, args, max_attempts, queued_at.
    /// Replay-safe: a task with `republished_at` = now is this call's own and is returned again
    /// (a taken id stays where it was in `resent`, and the cursor counts its position).
    static let lost = RedisScript(
        name: "lost",
        source: prelude + """
            local now, topic, cursor = tonumber(ARGV[A]), ARGV[A + 1], ARGV[A + 2]
            local from, to, cutoff, limit = tonumber(ARGV[A + 3]), tonumber(ARGV[A + 4]), tonumber(ARGV[A + 5]),
              tonumber(ARGV[A + 6])
            local take_processing = ARGV[A + 7] == '1'
            local out, seen = { '', 0 }, 0
            -- PROCESSING only when the broker lost its log: a task waiting for its retry (or
            -- running) has no copy but the message its worker holds, and a worker that loses
            -- the partition drops it, counting on its redelivery from the committed offset,
            -- which a broker that lost its log no longer has. On a healthy broker a worker
            -- holding a task's message holds back its partition's commit, so the sample
            -- rule would not take it either, but a broker whose end offsets read low (Tansu)
            -- would hand a long-running task a copy every 30 s, each a new attempt that
            -- makes the running one stale. A copy published after a lost log while the task
            -- still runs is harmless: on another worker `begin` answers `running:` and that
            -- worker waits for the attempt (AttemptElsewhere); on the same worker it runs as
            -- the next attempt, and only the last attempt's outcome is written.
            local function waits(r)
              local status = r and r[F.status]
              return status == 'QUEUED' or (take_processing and status == 'PROCESSING')
            end
            local function ours(r) return r[F.topic] == '' or r[F.topic] == topic end
            local function in_window(r) return r[F.queued_at] >= from and r[F.queued_at] <= to end
            -- When its message was last sent: a copy published again and lost as well (the
            -- scheduler died before sending it, or the broker lost it too) is found like the first.
            local function last_sent(r)
              return math.max(r[F.queued_at], r[F.released_at], r[F.requeued_at], r[F.republished_at])
            end
            -- Takes task `id` (decoded `r`) if its message, last sent at `last`, was lost, or
            -- if this call took it already (replayed); returns whether it did.
            local function take(id, r, last)
              local mine = r[F.republished_at] == now
              if not (mine or last < cutoff) then return false end
              if not mine then
                r[F.republished_at] = now
                write(id, r)
              end
              for _, value in ipairs({ id, r[F.type], r[F.args], r[F.max_attempts], r[F.queued_at] }) do
                out[#out + 1] = value
              end
              return true
            end
            -- The tasks sent again: `at` is how many ids before the cutoff the previous calls of
            -- this look left in place (another topic's, the walk's, taken); the others left.
            -- Then the tasks in flight, from the `HSCAN` cursor `in_flight` ('0': the start).
            local phase = sub(cursor, 1, 1)
            local at = (cursor == '' and 0) or (phase == 'r' and tonumber(sub(cursor, 2))) or nil
            local in_flight = (at and '0') or (phase == 'p' and sub(cursor, 2)) or nil
            if at and from > 0 then
              local found = redis.call('ZRANGEBYSCORE', K.resent, '-inf', '(' .. cutoff, 'WITHSCORES', 'LIMIT', at, limit)
              local ids, scores, gone, n_gone = {}, {}, {}, 0
              for k = 1, #found / 2 do ids[k], scores[k] = found[2 * k - 1], tonumber(found[2 * k]) end
              for k, packed in ipairs(read(ids)) do
                local id, r = ids[k], packed and decode(packed)
                -- (A PROCESSING one, after a lost log, is taken with the tasks in flight.)
                if not (r and r[F.status] == 'QUEUED') then
                  n_gone = n_gone + 1
                  gone[n_gone] = id
                elseif ours(r) and not in_window(r) then
                  -- A task written late was sent at its score, after its queued_at.
                  local last = math.max(scores[k], last_sent(r))
                  if take(id, r, last) then at = at + 1 else sent_again(id, last) end
                else
                  at = at + 1
                end
              end
              if n_gone > 0 then chunked('ZREM', K.resent, gone) end
              seen = #ids
              if seen == limit then
                flush()
                out[1], out[2] = 'r' .. at, seen
                return out
              end
            end
            if in_flight and take_processing and from > 0 then
              repeat
                local found = redis.call('HSCAN', K.running, in_flight, 'COUNT', limit - seen)
                in_flight = found[1]
                -- The scan gives each entry with its id: only the records are read.
                local entries, ids, held = found[2], {}, {}
                for k = 1, #entries / 2 do ids[k], held[k] = entries[2 * k - 1], entries[2 * k] end
                local records = hmget(K.records, ids)
                for k = 1, #ids do
                  local id, stored = ids[k], records[k]
                  local r = stored and decode(with_entry(stored, held[k]))
                  if r and r[F.status] == 'PROCESSING' and ours(r) and not in_window(r) and take(id, r, last_sent(r)) then
                    sent_again(id, now)
                  end
                end
                seen = seen + #ids
              until in_flight == '0' or seen >= limit
              if in_flight ~= '0' then
                flush()
                out[1], out[2] = 'p' .. in_flight, seen
                return out
              end
            end
            local function next_bucket(after)
              local found = redis.call('ZRANGEBYSCORE', K.buckets, '(' .. after, second(to), 'LIMIT', 0, 1)
              return found[1] and tonumber(found[1])
            end
            local s, i
            if in_flight then
              s, i = next_bucket(second(from) - 1), 0
            else
              local colon = string.find(cursor, ':', 1, true)
              s, i = tonumber(sub(cursor, 1, colon - 1)), tonumber(sub(cursor, colon + 1))
            end
            while s and seen < limit do
              local want = limit - seen
              local ids = redis.call('LRANGE', K.bucket .. s, i, i + want - 1)
              for k, packed in ipairs(read(ids)) do
                local id, r = ids[k], packed and listed_in(decode(packed), s)
                if waits(r) and ours(r) and in_window(r) then
                  local last = last_sent(r)
                  if take(id, r, last) then
                    sent_again(id, now)
                  elseif from == 0 and last > r[F.queued_at] then
                    redis.call('ZADD', K.resent, 'NX', last, id)
                  end
                end
              end
              seen, i = seen + #ids, i + #ids
              if #ids < want then s, i = next_bucket(s), 0 end
            end
            flush()
            if s then out[1] = s .. ':' .. i end
            out[2] = seen
            return out
            """)

    /// ARGV: shard prefixes, now, worker, keep_failed_ms, repeats (as for ``queue``), how
    /// many attempts over follow, the attempts over (`<started_at>:<worker>`: attempts of
    /// other workers that the caller found ended, see below), the tasks' partitions as runs
    /// (see runs_at: a worker's batch comes from a few partitions, each in a long run), then
    /// per task: id.
    /// Returns per task (or once for all when all are alike: see answers): n > 0 to run
    /// attempt n (now PROCESSING); 0 when the task is already terminal, or has a cancel
    /// request (see ``cancel``) and is now CANCELLED instead of running again (skip it); -n
    /// when all n attempts were used up by workers that died mid-attempt (the caller fails it
    /// for good); 'missing' when there is no record (published by other means, lost, or
    /// expired): the caller registers it with `queue` and asks again;
    /// `running:<started_at>:<worker>` when the task is PROCESSING under an attempt of
    /// another worker that is not among the attempts over: nothing is written, and the caller
    /// tells from that worker's heartbeat whether the attempt may still run (its partition
    /// moved to this worker in the middle of that worker's batch) or is over (the worker
    /// died, or its batch ended without an outcome), and then asks again with the attempt
    /// among those over. The type and arguments are not sent: the record has them.
    /// Replay-safe: a task this worker started at this very `now` is this call's own, and
    /// its attempt is answered again instead of being counted twice.
    static let begin = RedisScript(
        name: "begin",
        source: prelude + """
            local now, worker, keep_failed = tonumber(ARGV[A]), ARGV[A + 1], tonumber(ARGV[A + 2])
            local repeats = ARGV[A + 3] == '1'
            local over = {}
            local n_over = tonumber(ARGV[A + 4])
            for i = A + 5, A + 4 + n_over do over[ARGV[i]] = true end
            local partitions, n_partitions, first = runs_at(A + 5 + n_over, tonumber)
            local ids = ids_from(first, 1)
            check_runs('begin', n_partitions, #ids)
            -- answered: each id's answer so far, kept only when some id repeats.
            local out, cancelled, started, answered = {}, 0, 0, {}
            -- This call's entries (see running_entry), by partition, then by
            -- attempt: the tasks of a partition on the same attempt share theirs, packed once.
            local call_entries = {}
            -- Whether the record `packed` (of any version) names `worker`.
            local function started_by(packed, worker)
              packed = current(packed)
              return worker_is(packed, struct_unpack('>I4', packed, AT_STRINGS), worker)
            end
            -- The attempt in flight of the PROCESSING record `packed`: `<started_at>:<worker>`.
            local function attempt_key(packed)
              packed = current(packed)
              local worker_length = struct_unpack('>I4', packed, AT_STRINGS)
              return string.format('%.0f', struct_unpack('>d', packed, AT_STARTED)) .. ':'
                .. sub(packed, AT_STRINGS + 4, AT_STRINGS + 3 + worker_length)
            end
            local records = read(ids)
            for k = 1, #ids do
              local packed, id = records[k], ids[k]
              if answered[id] ~= nil then
                -- The same id twice in one call (a message published twice): the first one's
                -- answer, as a replay of the call would give it, and nothing counted twice.
                out[k] = answered[id]
              elseif not packed then
                out[k] = 'missing'
              else
                -- Only what the usual case checks, in short reads (see checked()).
                local code, attempts = struct_unpack('>BI4', packed, 2)
                local max_attempts, cancel_requested = struct_unpack('>I4d', packed, AT_MAX)
                if terminal_code(code) then
                  out[k] = 0
                elseif code == 1 and struct_unpack('>d', packed, AT_STARTED) == now and started_by(packed, worker) then
                  out[k] = attempts  -- this call's own, replayed
                elseif code == 1 and not started_by(packed, worker) and not over[attempt_key(packed)] then
                  out[k] = 'running:' .. attempt_key(packed)
                elseif (code == 0 or code == 1) and cancel_requested == 0 and attempts < max_attempts then
                  -- The usual case: only the attempt's entry in `running` is written, and the
                  -- count is kept per batch.
                  local partition, attempt = partitions[k], attempts + 1
                  local by_attempt = call_entries[partition]
                  if not by_attempt then by_attempt = {}; call_entries[partition] = by_attempt end
                  local entry = by_attempt[attempt]
                  if not entry then
                    entry = running_entry(attempt, partition, now, worker)
                    by_attempt[attempt] = entry
                  end
                  set_running(id, entry)
                  -- (A PROCESSING one, an orphan taken over or a retry, stays counted as it is.)
                  if code == 0 then started = started + 1 end
                  out[k] = attempts + 1
                else
                  local r = decode(packed)
                  local status = r[F.status]
                  if cancel_requested > 0 then
                    -- Cancelled while it waited for its next attempt: it does not run again.
                    r[F.status] = 'CANCELLED'
                    r[F.finished_at] = now
                    move(id, status, 'CANCELLED', r)
                    keep_until(id, r, now + keep_failed)
                    write(id, r)
                    cancelled = cancelled + 1
                    out[k] = 0
                  elseif attempts >= max_attempts then
                    out[k] = -attempts
                  else
                    -- SCHEDULED: released by a message published before its time.
                    r[F.attempts] = attempts + 1
                    r[F.worker] = worker
                    r[F.started_at] = now
                    r[F.partition] = partitions[k]
                    move(id, status, 'PROCESSING', r)
                    r[F.status] = 'PROCESSING'
                    write(id, r)
                    out[k] = attempts + 1
                  end
                end
              end
              if repeats then answered[id] = out[k] end
            end
            if started > 0 then
              counts.QUEUED = (counts.QUEUED or 0) - started
              counts.PROCESSING = (counts.PROCESSING or 0) + started
            end
            count_finished(now, 0, 0, cancelled)
            flush()
            return answers(out)
            """)

    /// ARGV: shard prefixes, now, worker, keep_succeeded_ms, keep_failed_ms, begun (the `now`
    /// of the `begin` call that began the attempts: one per batch), repeats (as for
    /// ``queue``), the tasks' outcomes as runs (see runs_at: each the outcome's letter followed
    /// by the attempt's number, `S1`, and `x` for an attempt this worker did not begin, see
    /// below; a batch's tasks mostly share a few), then per task: id, payload, and, only when
    /// the letter is in lower case (`s`, `r`, `f`, `c`), logs and progress.
    /// outcome: `S` success (payload = result JSON), `R` a failed attempt that will be
    /// retried, `F` the final failure, `C` an attempt stopped because the task was cancelled
    /// (payload = error text); for a task with a cancel request (see ``cancel``) `R`, `F`
    /// and `C` end it CANCELLED. logs: a JSON array of lines to append, or ''. progress: a
    /// number, or ''. (Most attempts log nothing and report no progress: two arguments fewer
    /// per task, each of which would cost Redis a string made and freed.)
    /// An outcome is written only for the attempt in flight it is of: its number, its
    /// worker and its start (`begun`). The number alone is not enough: an operator's retry
    /// counts attempts from 0 again, so a worker that was frozen in attempt 1 before the retry
    /// would otherwise write over the attempt 1 begun after it. An outcome marked `x` (all
    /// attempts used up by workers that died mid-attempt: this worker began none, see
    /// ``begin``) is checked by its number alone.
    /// Returns per task (or once for all when all are alike: see answers) 1 when written, 0
    /// when stale: the task is already terminal, or runs under another attempt (a later one,
    /// or another worker's, or one begun after an operator's retry: a worker that was frozen
    /// must not write over it).
    /// Replay-safe: an outcome this worker wrote at this very `now` for this attempt
    /// (`outcome_at`) is answered 1 again, without a second error entry or log.
    static let finish = RedisScript(
        name: "finish",
        source: prelude + """
            local now, worker = tonumber(ARGV[A]), ARGV[A + 1]
            local keep = { SUCCESS = tonumber(ARGV[A + 2]), FAILED = tonumber(ARGV[A + 3]), CANCELLED = tonumber(ARGV[A + 3]) }
            local begun = tonumber(ARGV[A + 4])
            local repeats = ARGV[A + 5] == '1'
            -- Each distinct outcome text: the outcome, the attempt, whether logs and progress
            -- follow (the letter in lower case), and whether the attempt is another worker's (x).
            local OUTCOMES = { S = 'S', R = 'R', F = 'F', C = 'C', s = 'S', r = 'R', f = 'F', c = 'C' }
            local function kind_of(text)
              local letter, number, elsewhere = string.match(text, '^([SRFCsrfc])(%d+)(x?)$')
              if not letter then error('finish: the outcome ' .. text .. ' is not a letter of SRFC and an attempt') end
              return { outcome = OUTCOMES[letter], attempt = tonumber(number), extras = letter ~= OUTCOMES[letter],
                elsewhere = elsewhere == 'x' }
            end
            local task_kinds, n, first = runs_at(A + 6, kind_of)
            -- Each task's id and where its arguments start.
            local ids, starts, i = {}, {}, first
            for k = 1, n do
              ids[k], starts[k] = ARGV[i], i
              i = i + (task_kinds[k].extras and 4 or 2)
            end
            if i ~= #ARGV + 1 then
              error('finish: the arguments after the runs are not those of their ' .. n .. ' tasks')
            end
            local stored, entries = read_stored(ids)
            -- What every usual success of this call shares, and the list of their ids, retained
            -- until the same second.
            local success_expires = now + keep.SUCCESS
            local success_times, worker_lp = struct_pack('>ddd', now, now, success_expires), lp(worker)
            local spliced_ids = {}
            -- Per entry of `running` seen (a call's are few: `begin` packs one per partition and
            -- attempt, and Lua interns strings, so a lookup by entry is a pointer's hash): its
            -- attempt when it names this worker and began at `begun`, else false; and its first
            -- 16 bytes. Each is worked out once per call, not per task.
            local own_attempt, entry_heads = {}, {}
            -- The ids seen so far and their records as this call left them, kept only when
            -- some id repeats.
            local out, seen, latest = {}, {}, {}
            local succeeded, failed, cancelled, spliced = 0, 0, 0, 0
            -- Whether the record's last error entry is this worker's for `attempt`, written at
            -- now. A task this worker failed because other workers used its attempts up still
            -- names their worker, not this one: its replay is told by this entry instead.
            local function last_error_is_mine(packed, attempt)
              local errors = decode(packed)[F.errors]
              if errors == '' then return false end
              local list = cjson.decode(errors)
              local last = list[#list]
              return last ~= nil and last.worker == worker and last.at == now and last.attempt == attempt
            end
            -- Every case but the usual one: the record decoded, changed and encoded whole.
            local function settle(id, packed, attempt, outcome, payload, logs, progress)
              local r = decode(packed)
              local before = r[F.status]
              r[F.outcome_at] = now
              if logs ~= '' then
                local lines = sub(logs, 2, -2)
                if lines ~= '' then r[F.logs] = append_json(r[F.logs], lines) end
              end
              if progress ~= '' then r[F.progress] = progress end
              local final
              if outcome == 'S' then
                r[F.result] = payload
                final = 'SUCCESS'
                succeeded = succeeded + 1
              else
                local error_entry = cjson.encode({attempt = attempt, worker = worker, error = payload, at = now})
                r[F.error] = payload
                r[F.errors] = append_json(r[F.errors], error_entry)
                if r[F.cancel_requested] > 0 or outcome == 'C' then
                  final = 'CANCELLED'
                  cancelled = cancelled + 1
                elseif outcome == 'F' then
                  final = 'FAILED'
                  failed = failed + 1
                end
              end
              if final then
                r[F.status] = final
                r[F.finished_at] = now
                move(id, before, final, r)
                keep_until(id, r, now + keep[final])
              end
              local record = encode(r)
              if repeats then latest[id] = record end
              write_packed(id, record)
            end
            for k = 1, n do
              local id, i, kind = ids[k], starts[k], task_kinds[k]
              local outcome, attempt, payload = kind.outcome, kind.attempt, ARGV[i + 1]
              local logs, progress = '', ''
              if kind.extras then logs, progress = ARGV[i + 2], ARGV[i + 3] end
              -- The same id twice in one call sees the first one's change (entry merged).
              local packed, entry = latest[id], false
              if not packed then packed, entry = stored[k], entries[k] end
              local entry_attempt = false
              if entry then
                entry_attempt = own_attempt[entry]
                if entry_attempt == nil then
                  entry_attempt = entry_worker(entry) == worker and struct_unpack('>d', entry, 9) == begun
                    and (struct_unpack(ENTRY, entry))
                  own_attempt[entry], entry_heads[entry] = entry_attempt, sub(entry, 1, 16)
                end
              end
              if entry_attempt == attempt and packed and not seen[id] and outcome == 'S' and logs == ''
                and progress == '' and SPLICEABLE[sub(packed, 1, 2)] then
                -- The usual case: the attempt in flight, this worker's, succeeded without logs
                -- or progress. Its entry and the result are spliced into the stored record,
                -- and counted per batch. (Not a replay: a success already written left no entry.)
                -- (unset_running and write_packed, inline: a call per task costs more than its work.)
                n_running_del = n_running_del + 1
                running_del[n_running_del] = id
                local record = succeeded_record(packed, entry_heads[entry], success_times, worker_lp, payload)
                if repeats then latest[id] = record end
                writes[n_writes + 1], writes[n_writes + 2] = id, record
                n_writes = n_writes + 2
                succeeded, spliced = succeeded + 1, spliced + 1
                spliced_ids[spliced] = id
                out[k] = 1
              else
                if packed then packed = entry and with_entry(packed, entry) or current(packed) end
                local code, attempts, started_at, outcome_at, worker_length
                if packed then code, attempts, started_at, outcome_at, worker_length = checked(packed) end
                -- Whether the record's attempt (in flight, or the one whose outcome it holds) is
                -- the one this outcome is of: the same number and, unless another worker's, this
                -- worker's, begun at `begun`.
                local its = packed and attempts == attempt
                  and (kind.elsewhere or (started_at == begun and worker_is(packed, worker_length, worker)))
                if its and not seen[id] and outcome_at == now
                  and (worker_is(packed, worker_length, worker) or last_error_is_mine(packed, attempt)) then
                  out[k] = 1  -- this call's own outcome, replayed
                elseif not its or terminal_code(code) then
                  out[k] = 0
                else
                  settle(id, packed, attempt, outcome, payload, logs, progress)
                  out[k] = 1
                end
              end
              if repeats then seen[id] = true end
            end
            if spliced > 0 then
              counts.PROCESSING = (counts.PROCESSING or 0) - spliced
              counts.SUCCESS = (counts.SUCCESS or 0) + spliced
              push_expiring(second(success_expires), spliced_ids)
            end
            count_finished(now, succeeded, failed, cancelled)
            flush()
            prune(now, prune_budget(#out))
            flush()
            return answers(out)
            """)

    /// ARGV: shard prefixes, now, keep_failed_ms, then per task: id, reason. A task whose publish
    /// failed goes from QUEUED to FAILED with the reason. Returns 1 when written.
    static let failUnpublished = RedisScript(
        name: "fail_unpublished",
        source: prelude + """
            local now, keep_failed = tonumber(ARGV[A]), tonumber(ARGV[A + 1])
            local ids = ids_from(A + 2, 2)
            local out, failed = {}, 0
            for k, packed in ipairs(read(ids)) do
              local r = packed and decode(packed)
              if r and r[F.status] == 'QUEUED' then
                local id, reason = ids[k], ARGV[A + 2 + (k - 1) * 2 + 1]
                r[F.status] = 'FAILED'
                r[F.error] = reason
                r[F.errors] = append_json(r[F.errors], cjson.encode({attempt = 0, worker = '', error = reason, at = now}))
                r[F.finished_at] = now
                move(id, 'QUEUED', 'FAILED', r)
                keep_until(id, r, now + keep_failed)
                write(id, r)
                failed = failed + 1
                out[k] = 1
              else
                out[k] = 0
              end
            end
            count_finished(now, 0, failed)
            flush()
            return out
            """)

    /// ARGV: shard prefixes, the name of a field of the record's header (`status` to
    /// `queued_at`: `cancel_requested`, ...), then ids. Returns per task that field (a status
    /// name, else a number: 0 for none), or nil for an unknown id. Only the header is decoded and only the
    /// field crosses the network: `yadtq-run --wait` and the cancel watch ask this of many
    /// tasks again and again, and their arguments and results need not come along.
    static let headerField = RedisScript(
        name: "header_field",
        source: keysAndPrefixes + recordCoding + """
            local field = F[ARGV[A]]
            if not field or field > F.queued_at then
              return redis.error_reply('header_field: ' .. ARGV[A] .. ' is not a field of the record header')
            end
            local ids = ids_from(A + 1, 1)
            local out = {}
            for k, packed in ipairs(read(ids)) do
              if packed then
                local value = select(field, struct_unpack(HEADER, packed))
                out[k] = field == F.status and STATUS[value] or value
              else
                out[k] = false
              end
            end
            return out
            """)

    /// ARGV: shard prefixes, now, keep_failed_ms, then per task: id. Cancels tasks: a QUEUED
    /// or SCHEDULED one becomes CANCELLED (kept like a FAILED one; a SCHEDULED one leaves
    /// `scheduled:<topic>`, so it is never released); a PROCESSING one gets a cancel request
    /// (`cancel_requested`): its worker stops the attempt, and ``finish`` ends it CANCELLED
    /// unless it succeeded first.
    /// Returns per task `cancelled` (it was QUEUED), `unscheduled` (it was SCHEDULED),
    /// `requested`, `missing`, or the (terminal) status it has, unchanged.
    /// Replay-safe: a task this call cancelled has `cancel_requested` = now.
    static let cancel = RedisScript(
        name: "cancel",
        source: prelude + """
            local now, keep_failed = tonumber(ARGV[A]), tonumber(ARGV[A + 1])
            local ids = ids_from(A + 2, 1)
            local out, cancelled = {}, 0
            for k, packed in ipairs(read(ids)) do
              local id = ids[k]
              local r = packed and decode(packed)
              if not r then
                out[k] = 'missing'
              elseif r[F.status] == 'QUEUED' or r[F.status] == 'SCHEDULED' then
                local before = r[F.status]
                r[F.status] = 'CANCELLED'
                r[F.finished_at] = now
                r[F.cancel_requested] = now
                move(id, before, 'CANCELLED', r)
                keep_until(id, r, now + keep_failed)
                write(id, r)
                cancelled = cancelled + 1
                out[k] = before == 'SCHEDULED' and 'unscheduled' or 'cancelled'
              elseif r[F.status] == 'PROCESSING' then
                if r[F.cancel_requested] == 0 then
                  r[F.cancel_requested] = now
                  write(id, r)
                end
                out[k] = 'requested'
              elseif r[F.status] == 'CANCELLED' and r[F.cancel_requested] == now then
                -- This call's own: a task SCHEDULED when cancelled has a due time, and was
                -- neither released nor queued again since it got it.
                local was_scheduled = r[F.due_at] > 0 and r[F.released_at] == 0 and r[F.requeued_at] == 0
                out[k] = was_scheduled and 'unscheduled' or 'cancelled'
              else
                out[k] = r[F.status]
              end
            end
            count_finished(now, 0, 0, cancelled)
            flush()
            return out
            """)

    /// ARGV: shard prefixes, now, then per task: id. Queues a FAILED or CANCELLED task again
    /// under its id: QUEUED, attempts 0, its earlier `errors` and logs kept, no longer
    /// expiring (a queued task is never pruned; its old expiry entry is skipped), its
    /// `queued_at` (its place in the listing) unchanged. The caller publishes it again.
    /// Returns per task `queued`, `missing`, or the status it has, unchanged.
    /// Replay-safe: a task this call queued again has `requeued_at` = now.
    static let requeue = RedisScript(
        name: "requeue",
        source: prelude + """
            local now = tonumber(ARGV[A])
            local ids = ids_from(A + 1, 1)
            local out = {}
            for k, packed in ipairs(read(ids)) do
              local id = ids[k]
              local r = packed and decode(packed)
              if not r then
                out[k] = 'missing'
              elseif r[F.status] == 'FAILED' or r[F.status] == 'CANCELLED' then
                local before = r[F.status]
                r[F.status] = 'QUEUED'
                r[F.attempts] = 0
                r[F.requeued_at] = now
                r[F.expires_at] = 0
                for _, field in ipairs({F.started_at, F.finished_at, F.outcome_at, F.cancel_requested}) do r[field] = 0 end
                for _, field in ipairs({F.result, F.error, F.worker, F.progress}) do r[field] = '' end
                move(id, before, 'QUEUED', r)
                write(id, r)
                sent_again(id, now)
                out[k] = 'queued'
              elseif r[F.status] == 'QUEUED' and r[F.requeued_at] == now then
                out[k] = 'queued'
              else
                out[k] = r[F.status]
              end
            end
            flush()
            return out
            """)

    /// ARGV: shard prefixes, status, type ('' for any), cutoff ('' for none), the listing
    /// second to go on from ('' for the newest), how many ids to look at. Deletes, like
    /// pruning, the terminal tasks in `status` whose type matches and whose `finished_at` is
    /// at most the cutoff, walking the listing newest first, whole seconds at a time.
    /// Returns { the second to go on from (-1 when done), the deleted ids }.
    /// Replay-safe: it reads what is still there.
    static let purge = RedisScript(
        name: "purge",
        source: prelude + """
            local status, type, cutoff = ARGV[A], ARGV[A + 1], tonumber(ARGV[A + 2])
            local from, budget = ARGV[A + 3] == '' and '+inf' or ('(' .. ARGV[A + 3]), tonumber(ARGV[A + 4])
            local seen, next = 0, -1
            local doomed, records = {}, {}
            while seen < budget do
              local found = redis.call('ZREVRANGEBYSCORE', K.buckets, from, '-inf', 'LIMIT', 0, 1)
              if #found == 0 then next = -1; break end
              local s = found[1]
              local ids = redis.call('LRANGE', K.bucket .. s, 0, -1)
              seen = seen + #ids
              for k, packed in ipairs(read(ids)) do
                local r = packed and decode(packed)
                if r and r[F.status] == status and (type == '' or r[F.type] == type)
                  and (not cutoff or r[F.finished_at] <= cutoff) then
                  doomed[#doomed + 1] = ids[k]
                  records[#records + 1] = packed
                end
              end
              from, next = '(' .. s, tonumber(s)
            end
            forget(doomed, records)
            -- What forget deleted: each task once.
            local deleted = removed
            flush()
            return { next, deleted }
            """)

    /// ARGV: shard prefixes, now, limit. Prunes up to `limit` tasks whose retention has ended;
    /// returns how many tasks (and listing buckets due to be tidied) are still due to be looked
    /// at after this call (0 when caught up). A listing bucket mostly emptied by this call is
    /// tidied by a call a minute (of `now`) later.
    static let prune = RedisScript(
        name: "prune",
        source: prelude + """
            local now, limit = tonumber(ARGV[A]), tonumber(ARGV[A + 1])
            prune(now, limit)
            flush()
            local left = 0
            for _, s in ipairs(redis.call('ZRANGEBYSCORE', K.expiring, '-inf', second(now) - 1, 'LIMIT', 0, 64)) do
              -- A bucket due to be tidied counts as one.
              left = left + (sub(s, 1, #TIDY) == TIDY and 1 or redis.call('LLEN', K.expiring_at .. s))
            end
            return left
            """)
}
