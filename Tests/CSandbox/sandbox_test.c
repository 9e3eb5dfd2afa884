/*
 * C-level tests of the sandbox (Sources/CLuaSandbox), built by scripts/test with AddressSanitizer
 * and UndefinedBehaviorSanitizer: the value conversions from Swift's flat encoding, the time and
 * memory limits (a stopped state is freed block by block, never run again), the watchdog's stop
 * inside a collection no check reaches, a stop requested by another thread (a cancelled task), and
 * the bounded library functions. Prints "N passed, N failed"; exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L /* alarm */

#ifndef YADTQ_FIXTURES
#error "build with -DYADTQ_FIXTURES='\"<repository>/Tests/Fixtures\"', as scripts/test does"
#endif

#include "yadtq_sandbox.h"

#include <lauxlib.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int passed, failed;

#define CHECK(condition, ...)                                        \
    do {                                                             \
        if (condition) {                                             \
            passed++;                                                \
        } else {                                                     \
            failed++;                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);     \
            fprintf(stderr, __VA_ARGS__);                            \
            fprintf(stderr, "\n");                                   \
        }                                                            \
    } while (0)

static int quiet_host(lua_State *L, yadtq_reply *reply) {
    (void)L;
    (void)reply;
    return YADTQ_REPLY_NOTHING;
}

/* A flat encoding writer (the layout yadtq_push_encoded reads). */
typedef struct {
    unsigned char bytes[256];
    size_t length;
} encoding;

static void put(encoding *e, const void *data, size_t n) {
    memcpy(e->bytes + e->length, data, n);
    e->length += n;
}
static void put_tag(encoding *e, char tag) { put(e, &tag, 1); }
static void put_u64(encoding *e, uint64_t value) { put(e, &value, sizeof value); }
static void put_int(encoding *e, int64_t value) {
    put_tag(e, 'i');
    put(e, &value, sizeof value);
}
static void put_string(encoding *e, const char *text) {
    put_tag(e, 's');
    put_u64(e, strlen(text));
    put(e, text, strlen(text));
}

typedef struct {
    yadtq_sandbox sandbox;
    lua_State *L;
} sandboxed;

static void open_state(sandboxed *s, size_t limit) {
    memset(&s->sandbox, 0, sizeof s->sandbox);
    s->sandbox.limit = limit;
    for (int host = 0; host < YADTQ_HOST_COUNT; host++) yadtq_set_host(&s->sandbox, host, quiet_host);
    int status = -1;
    s->L = yadtq_newstate(&s->sandbox, &status);
    if (s->L == NULL || status != LUA_OK) {
        fprintf(stderr, "cannot create a sandboxed state (status %d)\n", status);
        exit(2);
    }
}

static void close_state(sandboxed *s) {
    if (!s->sandbox.stopped) lua_close(s->L);
    yadtq_free_all(&s->sandbox);
}

/* Compiles `source` and runs it as a task with `args` under a deadline `timeout_ms` away.
 * Returns the entry point's status; the result or error is on the stack. */
static int run(sandboxed *s, const char *source, const encoding *args, uint64_t timeout_ms) {
    yadtq_chunk chunk = {source, strlen(source), "@test.lua", LUA_NOREF};
    int status = yadtq_compile(s->L, &chunk);
    if (status != LUA_OK) return status;
    lua_settop(s->L, 0);
    static const unsigned char no_args[] = {'a', 0, 0, 0, 0, 0, 0, 0, 0};
    yadtq_task task = {chunk.ref,
                       args ? (const char *)args->bytes : (const char *)no_args,
                       args ? args->length : sizeof no_args,
                       "t1", 2, 1, 3};
    yadtq_set_deadline(&s->sandbox, yadtq_now_ns() + timeout_ms * 1000000u);
    status = yadtq_run(s->L, &task);
    yadtq_set_deadline(&s->sandbox, 0);
    return status;
}

static void test_conversions(void) {
    sandboxed s;
    open_state(&s, 16u << 20);
    encoding args = {{0}, 0};
    put_tag(&args, 'a');
    put_u64(&args, 3);
    put_int(&args, 40);
    put_string(&args, "two");
    put_tag(&args, 'o');
    put_u64(&args, 1);
    put_u64(&args, 1);
    put(&args, "k", 1);
    put_tag(&args, 't');
    int status = run(&s, "return function(args) return args[1] + #args[2] + (args[3].k and 1 or 0) end", &args, 1000);
    CHECK(status == LUA_OK, "conversion run: status %d (%s)", status, lua_tostring(s.L, -1));
    CHECK(status == LUA_OK && lua_tointeger(s.L, -1) == 44, "40 + #'two' + 1 should be 44");
    close_state(&s);
}

static void expect_stopped(const char *label, const char *source, size_t limit, int why) {
    sandboxed s;
    open_state(&s, limit);
    uint64_t started = yadtq_now_ns();
    int status = run(&s, source, NULL, 200);
    double seconds = (double)(yadtq_now_ns() - started) / 1e9;
    CHECK(status == YADTQ_STOPPED, "%s: status %d, not stopped", label, status);
    CHECK(s.sandbox.stopped == why, "%s: stopped for %d, expected %d", label, s.sandbox.stopped, why);
    /* A few times the limit: what this guards against ran for minutes or for ever, and the
     * sanitizers on a busy machine must not fail the check. */
    CHECK(seconds < 3.0, "%s: took %.2f s against a 0.2 s limit", label, seconds);
    close_state(&s);
}

static void test_limits(void) {
    expect_stopped("busy loop", "return function() while true do end end", 16u << 20, YADTQ_STOPPED_TIME);
    expect_stopped("looping message handler",
                   "return function() return xpcall(function() while true do end end, function() while true do end end) end",
                   16u << 20, YADTQ_STOPPED_TIME);
    expect_stopped("pathological pattern",
                   "return function() return string.find(string.rep('a', 60), string.rep('.-', 10) .. 'b') end",
                   16u << 20, YADTQ_STOPPED_TIME);
    /* The matcher's steps include the walks of a long set and of a long replacement. */
    expect_stopped("long set", "return function() return string.find(('a'):rep(20000), '[' .. ('b'):rep(1 << 24) .. ']') end",
                   64u << 20, YADTQ_STOPPED_TIME);
    expect_stopped("long frontier set",
                   "return function() return string.find(('a'):rep(20000), '%f[' .. ('b'):rep(1 << 24) .. ']') end",
                   64u << 20, YADTQ_STOPPED_TIME);
    expect_stopped("long replacement of empty matches",
                   "return function() return (('a'):rep(100000):gsub('', ('%0'):rep(1 << 22))) end", 64u << 20,
                   YADTQ_STOPPED_TIME);
    /* Lua's parser runs no hook: a text a reader function returns at once is parsed piece by piece.
     * This one makes the parser look up `k` through 150 functions of 190 locals at every term and
     * allocates nothing while it does (the sum is folded into one constant). */
    expect_stopped("load of a long text from a reader function",
                   "return function() local locals = {} for i = 1, 190 do locals[i] = 'v' .. i end "
                   "local head = {'local k <const> = 1 '} "
                   "for i = 1, 150 do head[#head + 1] = 'local function f' .. i .. '() local ' .. table.concat(locals, ',') .. ' ' end "
                   "local text = table.concat(head) .. 'local x = k' .. ('+k'):rep(3e6) .. (' end'):rep(150) "
                   "local given = false "
                   "return load(function() if given then return nil end given = true return text end) end",
                   64u << 20, YADTQ_STOPPED_TIME);
    /* 200,000 empty strings behind a chain of 1990 __index tables: every element's lookup walks the
     * chain, and neither a call nor an allocation happens in Lua's loops over them. */
#define YADTQ_INDEX_CHAIN "local last = {} for i = 1, 200000 do last[i] = '' end local top = last " \
                          "for d = 1, 1990 do top = setmetatable({}, {__index = top}) end "
    expect_stopped("table.concat behind an __index chain",
                   "return function() " YADTQ_INDEX_CHAIN "return table.concat(top, '', 1, 200000) end", 64u << 20,
                   YADTQ_STOPPED_TIME);
    expect_stopped("table.unpack behind an __index chain",
                   "return function() " YADTQ_INDEX_CHAIN "return select('#', table.unpack(top, 1, 200000)) end",
                   64u << 20, YADTQ_STOPPED_TIME);
#undef YADTQ_INDEX_CHAIN
    expect_stopped("growing table", "return function() local t = {} for i = 1, 1e9 do t[i] = i end end", 4u << 20,
                   YADTQ_STOPPED_MEMORY);
    /* A library function's buffer (string.upper's here, for a 2.25 MB string made without one) is grown
     * by a direct call of the allocator, which raises "not enough memory" at the first refusal,
     * without Lua's collect-and-ask-again: that error, caught or returned, ends the task at the limit
     * too. */
#define YADTQ_LONG_STRING "local half = ('x'):rep(1125e3) local s = half .. half "
    expect_stopped("caught buffer memory error",
                   "return function() " YADTQ_LONG_STRING "while true do pcall(string.upper, s) end end", 4u << 20,
                   YADTQ_STOPPED_MEMORY);
    expect_stopped("returned buffer memory error", "return function() " YADTQ_LONG_STRING "return pcall(string.upper, s) end",
                   4u << 20, YADTQ_STOPPED_MEMORY);
    expect_stopped("buffer memory error in a message handler",
                   "return function() " YADTQ_LONG_STRING "return xpcall(string.upper, function() return 'handled' end, s) end",
                   4u << 20, YADTQ_STOPPED_MEMORY);
#undef YADTQ_LONG_STRING
    expect_stopped("caught memory error",
                   "return function() while true do pcall(string.rep, 'x', 1 << 30) local t = {} "
                   "for i = 1, 1e9 do t[i] = i end end end",
                   4u << 20, YADTQ_STOPPED_MEMORY);
}

/* The text of Tests/Fixtures/<name> (scripts/test passes the folder as YADTQ_FIXTURES); exits on failure. */
static char *read_fixture(const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", YADTQ_FIXTURES, name);
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        fprintf(stderr, "cannot open the fixture %s\n", path);
        exit(2);
    }
    static char text[1 << 16];
    size_t length = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[length] = 0;
    return text;
}

/* Lua's collector runs no hook and calls no allocator while it walks tables with weak keys again
 * and again until no more values turn out reachable: the fixture's chain of 40,000 entries makes
 * one collection take seconds. The watchdog's signal stops it inside the collection, and the state
 * abandoned there is freed block by block like any stopped one. */
static void *collector_stopped(void *unused) {
    (void)unused;
    const char *chain = read_fixture("weak_key_chain.lua");
    sandboxed s;
    open_state(&s, 64u << 20);
    uint64_t started = yadtq_now_ns();
    int status = run(&s, chain, NULL, 1000);
    double seconds = (double)(yadtq_now_ns() - started) / 1e9;
    CHECK(status == YADTQ_STOPPED && s.sandbox.stopped == YADTQ_STOPPED_TIME,
          "weak-key chain: status %d, stopped for %d, not by the time limit", status, s.sandbox.stopped);
    CHECK(strstr(s.sandbox.stopped_at, "garbage collector") != NULL,
          "weak-key chain: stopped at '%s', not inside the collection", s.sandbox.stopped_at);
    CHECK(seconds < 3.0, "weak-key chain: took %.2f s against a 1 s limit", seconds);
    close_state(&s);
    return NULL;
}

/* On a thread that blocks every signal, as the threads of a pool do (and those they start). */
static void test_collector_stopped(void) {
    sigset_t all, before;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &before);
    pthread_t thread;
    pthread_create(&thread, NULL, collector_stopped, NULL);
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    pthread_join(thread, NULL);
}

/* A limit the allocator finds notes where the task's Lua code was, as the hook does: a runaway
 * recursion reaches the memory limit with its stack, and the report must say where it ran. */
static void test_memory_stop_position(void) {
    sandboxed s;
    open_state(&s, 16u << 20);
    int status = run(&s, "return function()\n local function f() return 1 + f() end\n return f()\nend", NULL, 10000);
    CHECK(status == YADTQ_STOPPED && s.sandbox.stopped == YADTQ_STOPPED_MEMORY,
          "runaway recursion: status %d, stopped for %d, not by the memory limit", status, s.sandbox.stopped);
    CHECK(strstr(s.sandbox.stopped_at, "test.lua:2:") != NULL, "runaway recursion: stopped at '%s', not at test.lua:2",
          s.sandbox.stopped_at);
    close_state(&s);
}

/* Raises a stop_request flag after 100 ms, as the worker's cancel watcher does from its thread. */
static void *raise_later(void *flag) {
    struct timespec pause = {0, 100000000};
    nanosleep(&pause, NULL);
    yadtq_request_stop((int *)flag);
    return NULL;
}

/* A stop requested from another thread ends busy code and task.sleep long before their deadline,
 * as YADTQ_STOPPED_CANCELLED; a lowered flag stops nothing. */
static void expect_cancelled(const char *label, const char *source) {
    sandboxed s;
    open_state(&s, 16u << 20);
    int flag = 0;
    s.sandbox.stop_request = &flag;
    pthread_t thread;
    pthread_create(&thread, NULL, raise_later, &flag);
    uint64_t started = yadtq_now_ns();
    int status = run(&s, source, NULL, 10000);
    double seconds = (double)(yadtq_now_ns() - started) / 1e9;
    pthread_join(thread, NULL);
    CHECK(status == YADTQ_STOPPED, "%s: status %d, not stopped", label, status);
    CHECK(s.sandbox.stopped == YADTQ_STOPPED_CANCELLED, "%s: stopped for %d, not cancelled", label, s.sandbox.stopped);
    /* Well under the 10 s time limit: stopped by the request, not by the limit. */
    CHECK(seconds < 3.0, "%s: took %.2f s to stop after 0.1 s", label, seconds);
    close_state(&s);
}

static void test_stop_requests(void) {
    expect_cancelled("cancelled busy loop", "return function() while true do end end");
    expect_cancelled("cancelled sleep", "return function(args, task) task.sleep(60) end");
    expect_cancelled("cancelled caught loop",
                     "return function() while true do pcall(function() while true do end end) end end");
    sandboxed s;
    open_state(&s, 16u << 20);
    int flag = 0;
    s.sandbox.stop_request = &flag;
    yadtq_request_stop(&flag);
    yadtq_clear_stop(&flag);
    int status = run(&s, "return function(args, task) task.sleep(0.01) return 7 end", NULL, 1000);
    CHECK(status == LUA_OK && lua_tointeger(s.L, -1) == 7, "a lowered flag stops nothing: status %d", status);
    close_state(&s);
}

static void test_errors_are_values(void) {
    sandboxed s;
    open_state(&s, 16u << 20);
    int status = run(&s, "return function() error('boom', 0) end", NULL, 1000);
    CHECK(status == LUA_ERRRUN, "error(): status %d", status);
    CHECK(status == LUA_ERRRUN && strncmp(lua_tostring(s.L, -1), "boom", 4) == 0, "error text kept");
    lua_settop(s.L, 0);
    status = run(&s, "return function() return string.rep('ab', 3) end", NULL, 1000);
    CHECK(status == LUA_OK && strcmp(lua_tostring(s.L, -1), "ababab") == 0, "string.rep still works after an error");
    close_state(&s);
}

/* Runs `source` as a task and checks that it returns the string `expected`. */
static void expect_result(const char *label, const char *source, const char *expected) {
    sandboxed s;
    open_state(&s, 16u << 20);
    int status = run(&s, source, NULL, 5000);
    const char *got = lua_tostring(s.L, -1);
    CHECK(status == LUA_OK && got && strcmp(got, expected) == 0, "%s: status %d, got \"%s\", expected \"%s\"", label,
          status, got ? got : "(not a string)", expected);
    close_state(&s);
}

/* table.insert and table.remove shift elements without a call the hook sees: a __len that makes a
 * list 2^63 long must not keep them going past the deadline; their results stay Lua's. */
static void test_table_shifts(void) {
    expect_stopped("table.remove under a lying __len",
                   "return function() local t = setmetatable({}, {__len = function() return math.maxinteger end}) "
                   "return table.remove(t, 1) end",
                   16u << 20, YADTQ_STOPPED_TIME);
    expect_stopped("table.insert under a lying __len",
                   "return function() local t = setmetatable({}, {__len = function() return math.maxinteger - 1 end}) "
                   "table.insert(t, 1, 0) end",
                   16u << 20, YADTQ_STOPPED_TIME);
    expect_result("insert and remove as Lua's",
                  "return function() local t = {1, 2, 3} table.insert(t, 1, 0) table.insert(t, 9) table.insert(t, 6, 8) "
                  "local r = table.remove(t, 2) local last = table.remove(t) local none = table.remove({}) "
                  "local e = table.remove({}, 1) local big = {} for i = 1, 3000 do big[i] = i end "
                  "table.insert(big, 2, 0) local first = table.remove(big, 1) "
                  "return table.concat(t, ' ') .. '|' .. r .. last .. tostring(none) .. tostring(e) .. '|' .. first "
                  ".. ' ' .. big[1] .. ' ' .. big[2] .. ' ' .. big[3000] .. ' ' .. #big end",
                  "0 2 3 9|18nilnil|1 0 2 3000 3000");
    expect_result("load from a reader function as Lua's",
                  "return function() local parts = {'return ', ('1 + '):rep(50000), 2, nil} local i = 0 "
                  "local f = load(function() i = i + 1 return parts[i] end) "
                  "local _, bad = load(function() return {} end) "
                  "local given = false "
                  "local g = load(function() local s = given and '' or 'return 7' given = true return s end) "
                  "return f() .. '|' .. bad:match('^[^\\n]*') .. '|' .. g() end",
                  "50002|reader function must return a string|7");
    expect_result("insert and remove errors as Lua's",
                  "return function() return select(2, pcall(table.insert, {}, 5, 1)) .. '|' .. "
                  "select(2, pcall(table.insert, {}, 1, 2, 3)) .. '|' .. select(2, pcall(table.remove, {1}, 5)) .. '|' .. "
                  "select(2, pcall(table.insert, nil, 1)) end",
                  "bad argument #2 to 'table.insert' (position out of bounds)|wrong number of arguments to 'insert'|"
                  "bad argument #2 to 'table.remove' (position out of bounds)|bad argument #1 to 'table.insert' (table expected, got nil)");
}

/* Each task draws from a generator seeded afresh: what one task seeds, another cannot predict. */
static void test_random_seeds(void) {
    sandboxed s;
    open_state(&s, 16u << 20);
    int status = run(&s, "return function() math.randomseed(42) math.random(1 << 40) return math.random(1 << 40) end", NULL, 1000);
    lua_Integer second = lua_tointeger(s.L, -1);
    CHECK(status == LUA_OK, "seeding task: status %d", status);
    lua_settop(s.L, 0);
    status = run(&s, "return function() math.randomseed(42) return math.random(1 << 40) end", NULL, 1000);
    lua_settop(s.L, 0);
    status = run(&s, "return function() return math.random(1 << 40) end", NULL, 1000);
    lua_Integer after = lua_tointeger(s.L, -1);
    CHECK(status == LUA_OK && after != second,
          "the task after math.randomseed(42) got the next number of seed 42 (%lld)", (long long)second);
    lua_settop(s.L, 0);
    /* Reseeded from entropy, not from a constant: two unseeded tasks in a row, and the same
     * task in a fresh state, draw different numbers (2^40 values: a match by chance is
     * one in a trillion). */
    status = run(&s, "return function() return math.random(1 << 40) end", NULL, 1000);
    lua_Integer next = lua_tointeger(s.L, -1);
    CHECK(status == LUA_OK && next != after, "two tasks in a row drew the same number (%lld)", (long long)next);
    close_state(&s);
    sandboxed fresh;
    open_state(&fresh, 16u << 20);
    status = run(&fresh, "return function() return math.random(1 << 40) end", NULL, 1000);
    CHECK(status == LUA_OK && lua_tointeger(fresh.L, -1) != after,
          "a fresh state's first task drew the number another state's did (%lld)", (long long)after);
    close_state(&fresh);
}

/* Instructions that compare long strings: Lua's strcoll takes one call per NUL-separated piece, so
 * one `a < a` on 25 MB of NULs takes 0.2 s, and the hook must check after few of them, in the
 * thread that made the string or any other. */
static void test_string_comparisons(void) {
    char source[2048];
    const char *comparisons = "r = a < a r = a < a r = a < a r = a < a r = a < a r = a < a r = a < a r = a < a "
                              "r = a < a r = a < a r = a < a r = a < a r = a < a r = a < a r = a < a r = a < a ";
    snprintf(source, sizeof source, "return function() local r local a = ('\\0'):rep(25e6) %s%s%s end", comparisons,
             comparisons, comparisons);
    expect_stopped("comparisons of a long string", source, 64u << 20, YADTQ_STOPPED_TIME);
    snprintf(source, sizeof source,
             "return function() local r, a local co = coroutine.wrap(function() coroutine.yield() %s%s%s end) co() "
             "a = ('\\0'):rep(25e6) co() end",
             comparisons, comparisons, comparisons);
    expect_stopped("comparisons in a coroutine of a string made outside", source, 64u << 20, YADTQ_STOPPED_TIME);
    snprintf(source, sizeof source,
             "return function() local r, a local co = coroutine.create(function() a = ('\\0'):rep(25e6) "
             "coroutine.yield() end) coroutine.resume(co) %s%s%s end",
             comparisons, comparisons, comparisons);
    expect_stopped("comparisons of a string a coroutine made", source, 64u << 20, YADTQ_STOPPED_TIME);
    expect_result("coroutines as Lua's",
                  "return function() local out = {} "
                  "local gen = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return b * 2 end) "
                  "out[#out + 1] = gen(1) out[#out + 1] = gen(5) out[#out + 1] = select(2, pcall(gen)) "
                  "local bad = coroutine.wrap(function() error('boom') end) out[#out + 1] = select(2, pcall(bad)) "
                  "local co = coroutine.create(function() coroutine.yield(1) end) "
                  "out[#out + 1] = tostring(select(2, coroutine.resume(co))) "
                  "out[#out + 1] = tostring(coroutine.close(co)) .. coroutine.status(co) "
                  "out[#out + 1] = select(2, pcall(coroutine.resume, 42)) "
                  "out[#out + 1] = select(2, pcall(coroutine.wrap, 42)) "
                  "out[#out + 1] = select(2, pcall(function() coroutine.close(coroutine.running()) end)) "
                  "local main = coroutine.running() "
                  "out[#out + 1] = select(2, coroutine.resume(coroutine.create(function()\n"
                  "  return select(2, pcall(function() return coroutine.close(main) end)) end))) "
                  "out[#out + 1] = tostring(select(2, coroutine.resume(coroutine.running()))) "
                  "return table.concat(out, '|') end",
                  "2|10|cannot resume dead coroutine|test.lua:1: boom|1|truedead|"
                  "bad argument #1 to 'coroutine.resume' (thread expected, got number)|"
                  "bad argument #1 to 'coroutine.wrap' (function expected, got number)|"
                  "test.lua:1: cannot close a running coroutine|test.lua:2: cannot close a normal coroutine|"
                  "cannot resume non-suspended coroutine");
}

int main(void) {
    alarm(60); /* a limit that does not hold must fail the test, not hang it */
    test_conversions();
    test_limits();
    test_collector_stopped();
    test_memory_stop_position();
    test_stop_requests();
    test_errors_are_values();
    test_table_shifts();
    test_random_seeds();
    test_string_comparisons();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
