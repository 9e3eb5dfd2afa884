/*
 * The C half of the YADTQ plugin sandbox: the allocator and the hook that enforce the limits, the
 * sandbox's own library functions (bounded pattern matching, string.rep, table.move, insert,
 * remove, sort, concat and unpack, load, and coroutine.resume, wrap and close, which keep track of the running
 * thread), the conversions of values from Swift, and the protected entry points. The rules it
 * keeps are in yadtq_sandbox.h; functions Swift does not call are static.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, clock_nanosleep under -std=c11 */

#include "yadtq_sandbox.h"

#include <lauxlib.h>
#include <lualib.h>

#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

yadtq_sandbox *yadtq_sandbox_of(lua_State *L) {
    void *ud = NULL;
    (void)lua_getallocf(L, &ud);
    return (yadtq_sandbox *)ud;
}

uint64_t yadtq_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The same clock, read at a few ms resolution for a fraction of the cost: the hook reads it at every
 * function call. */
static uint64_t yadtq_coarse_now_ns(void) {
#ifdef CLOCK_MONOTONIC_COARSE
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#else
    return yadtq_now_ns();
#endif
}

/* Stops the running entry point for good: jumps straight back to it (yadtq_protected), past every
 * Lua frame, so that no more Lua code runs: no message handler, no __close handler, no catch point
 * can delay or replace the limit. The state is left inconsistent and may only be freed with
 * yadtq_free_all. Outside an entry point, or while Swift code runs (a host function), it returns,
 * and the caller goes on as if there were no stop (the allocator then reports a plain failure). */
static void yadtq_stop(yadtq_sandbox *sb, int why) {
    if (sb->stop_target == NULL) return;
    sb->stopped = why;
    longjmp(*(jmp_buf *)sb->stop_target, 1);
}

static void yadtq_note_position(lua_State *L, yadtq_sandbox *sb);

/* yadtq_stop for a limit the allocator (or a C function) finds: notes where the running thread's
 * Lua code was first, as the hook does, so that the report says where the task was when it ran out
 * of memory or time (a runaway recursion's stack reaches the memory limit). Lua's own error paths
 * read the stack at these points too (the message handler of a "stack overflow" runs in the middle
 * of growing the stack); lua_getinfo "Sl" allocates nothing. */
static void yadtq_stop_running(yadtq_sandbox *sb, int why) {
    if (sb->stop_target != NULL && sb->running != NULL) yadtq_note_position(sb->running, sb);
    yadtq_stop(sb, why);
}

void yadtq_request_stop(int *flag) { __atomic_store_n(flag, 1, __ATOMIC_RELEASE); }
void yadtq_clear_stop(int *flag) { __atomic_store_n(flag, 0, __ATOMIC_RELEASE); }

/* Whether another thread asked the running code to stop (see stop_request). A relaxed load: the
 * hook reads it as often as the clock, and a stop seen one check later is as good. */
static int yadtq_cancel_requested(const yadtq_sandbox *sb) {
    return sb->deadline_ns != 0 && sb->stop_request != NULL && __atomic_load_n(sb->stop_request, __ATOMIC_RELAXED) != 0;
}

/* Why the running code must stop now (YADTQ_STOPPED_*), or YADTQ_RUNNING. */
int yadtq_stop_reason(const yadtq_sandbox *sb) {
    if (sb->deadline_ns == 0) return YADTQ_RUNNING;
    if (yadtq_cancel_requested(sb)) return YADTQ_STOPPED_CANCELLED;
    return yadtq_coarse_now_ns() >= sb->deadline_ns ? YADTQ_STOPPED_TIME : YADTQ_RUNNING;
}

static void yadtq_unlink(yadtq_sandbox *sb, yadtq_block *b) {
    if (b->prev) b->prev->next = b->next; else sb->blocks = b->next;
    if (b->next) b->next->prev = b->prev;
}

/* Marks where the watchdog's signal must not jump from (see yadtq_on_stop_signal): the block list
 * halfway updated, or libc's allocator holding its locks. The fences keep the compiler from moving
 * that work across the marks (the handler runs on this thread, so no hardware fence is needed). */
static void yadtq_hold_jumps(yadtq_sandbox *sb) {
    __atomic_store_n(&sb->no_jump, 1, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}
static void yadtq_allow_jumps(yadtq_sandbox *sb) {
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(&sb->no_jump, 0, __ATOMIC_RELAXED);
}

/* How often the hook runs (see yadtq_hook): at every function call, and every yadtq_hook_count VM
 * instructions. One instruction may compare two long strings, and Lua compares strings with
 * strcoll, one call per NUL-separated piece: `a < a` on 25 MB of NULs takes 0.2 s, so 100 such
 * instructions between two checks ran 18 s. The count therefore follows the longest string the
 * running task has made: YADTQ_HOOK_INSTRUCTIONS while it has made none longer than 80 KiB (the
 * usual case, where a per-instruction hook would make a plain loop 3 times slower), down to every
 * instruction from 8 MiB on, so that count x (one comparison of the longest string) stays under
 * YADTQ_HOOK_STRING_BYTES compared bytes, about 60 ms. */
#define YADTQ_HOOK_INSTRUCTIONS 100
#define YADTQ_HOOK_STRING_BYTES (8u << 20)
#define YADTQ_HOOK_MASK (LUA_MASKCALL | LUA_MASKCOUNT)
static void yadtq_hook(lua_State *L, lua_Debug *ar);

/* Whether a refused growth request (see yadtq_alloc) is still waiting for its second ask. */
static int yadtq_refusal_pending(const yadtq_sandbox *sb) { return sb->refused_nsize != 0; }

static int yadtq_hook_count(const yadtq_sandbox *sb) {
    if (yadtq_refusal_pending(sb)) return 1; /* see yadtq_alloc */
    size_t count = sb->longest_string ? YADTQ_HOOK_STRING_BYTES / sb->longest_string : YADTQ_HOOK_INSTRUCTIONS;
    return count < 1 ? 1 : count > YADTQ_HOOK_INSTRUCTIONS ? YADTQ_HOOK_INSTRUCTIONS : (int)count;
}

/* Makes `thread` the running one and brings its hook count up to date. Lua lets lua_sethook be
 * called at any point (even from a signal handler), so this is safe inside an allocation too. */
static void yadtq_run_in(yadtq_sandbox *sb, lua_State *thread) {
    sb->running = thread;
    int count = yadtq_hook_count(sb);
    if (lua_gethookcount(thread) != count) lua_sethook(thread, yadtq_hook, YADTQ_HOOK_MASK, count);
}

/* The allocator looks at the clock every YADTQ_ALLOC_CHECK bytes of growth and before each emergency
 * collection: one instruction (a concatenation) can allocate megabytes and make Lua collect a full
 * state several times, all between two hook events. */
#define YADTQ_ALLOC_CHECK (1u << 20)
static void yadtq_alloc_check_deadline(yadtq_sandbox *sb) {
    sb->grown = 0;
    int why = yadtq_stop_reason(sb);
    if (why != YADTQ_RUNNING) yadtq_stop_running(sb, why);
}

/* The allocator: counts bytes and refuses growth past the limit. Lua answers a refusal with an
 * emergency full collection and asks again for the same block, so garbage never causes a failure;
 * when that second request is refused too, the task has hit the limit and the state is stopped
 * rather than letting Lua raise "not enough memory", which Lua code could catch or replace. A
 * library function's buffer (luaL_Buffer: string.format, table.concat, string.pack, ...) is grown
 * by a direct call of the allocator that raises "not enough memory" at the first refusal, without
 * collecting or asking again: so any other request while a refusal waits for its second ask stops
 * the state, and so do the hook, which then runs at every instruction of whichever thread runs
 * (yadtq_hook_count), and the entry point, should the call end first (yadtq_protected). */
static void *yadtq_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    yadtq_sandbox *sb = (yadtq_sandbox *)ud;
    size_t old = ptr ? osize : 0; /* for a new block, osize is a type tag, not a size */
    yadtq_block *block = ptr ? (yadtq_block *)ptr - 1 : NULL;
    if (nsize == 0) {
        if (block) {
            yadtq_hold_jumps(sb);
            yadtq_unlink(sb, block);
            free(block);
            sb->used -= old;
            yadtq_allow_jumps(sb);
        }
        return NULL;
    }
    /* Only frees and shrinks happen between a refused request and its second ask. */
    int second_ask = sb->refused_nsize == nsize && sb->refused_ptr == ptr && sb->refused_osize == osize;
    if (nsize > old && yadtq_refusal_pending(sb) && !second_ask) yadtq_stop_running(sb, YADTQ_STOPPED_MEMORY);
    if (nsize > old && nsize - old > sb->limit - sb->used) {
        if (second_ask) yadtq_stop_running(sb, YADTQ_STOPPED_MEMORY);
        yadtq_alloc_check_deadline(sb);
        sb->refused_ptr = ptr;
        sb->refused_osize = osize;
        sb->refused_nsize = nsize;
        if (sb->running) yadtq_run_in(sb, sb->running); /* the hook at every instruction */
        return NULL;
    }
    if (nsize > old) {
        if (second_ask) {
            sb->refused_nsize = 0;
            if (sb->running) yadtq_run_in(sb, sb->running); /* its hook count back from 1 */
        }
        sb->grown += nsize - old;
        if (sb->grown >= YADTQ_ALLOC_CHECK) yadtq_alloc_check_deadline(sb);
    }
    if (nsize > SIZE_MAX - sizeof(yadtq_block)) return NULL;
    yadtq_hold_jumps(sb);
    yadtq_block *moved = (yadtq_block *)realloc(block, sizeof(yadtq_block) + nsize);
    if (moved == NULL) {
        yadtq_allow_jumps(sb);
        return NULL;
    }
    if (block == NULL) {
        moved->prev = NULL;
        moved->next = sb->blocks;
        if (sb->blocks) sb->blocks->prev = moved;
        sb->blocks = moved;
    } else {
        if (moved->prev) moved->prev->next = moved; else sb->blocks = moved;
        if (moved->next) moved->next->prev = moved;
    }
    sb->used = sb->used - old + nsize;
    yadtq_allow_jumps(sb);
    /* A new block's osize is its type: a longer string than any before lowers the hook count of the
     * thread that made it, from its next instruction on (see yadtq_hook_count). */
    if (block == NULL && osize == LUA_TSTRING && nsize > sb->longest_string) {
        sb->longest_string = nsize;
        if (sb->running) yadtq_run_in(sb, sb->running);
    }
    return moved + 1;
}

static void yadtq_unwatch(yadtq_sandbox *sb);

/* Frees every block of a state, which must not be used afterwards: the way to dispose of a stopped
 * state (lua_close would run code of the state); and takes the sandbox off the watchdog's list. */
void yadtq_free_all(yadtq_sandbox *sb) {
    yadtq_unwatch(sb);
    while (sb->blocks) {
        yadtq_block *b = sb->blocks;
        sb->blocks = b->next;
        free(b);
    }
    sb->used = 0;
}

static int yadtq_panic(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "yadtq: unprotected Lua error (a bug in the plugin runtime): %s\n", msg ? msg : "?");
    return 0; /* Lua aborts the process */
}

static void yadtq_sleep_until(uint64_t when_ns) {
    struct timespec ts = {(time_t)(when_ns / 1000000000u), (long)(when_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

void yadtq_set_host(yadtq_sandbox *sb, int index, yadtq_host_fn fn) {
    if (index >= 0 && index < YADTQ_HOST_COUNT) sb->hosts[index] = fn;
}

/* ---------------------------------------------------------------------------------------------- */
/* The watchdog: a stop where no check runs.                                                      */

/* The hook and the allocator stop code that runs past its deadline or was cancelled, but neither
 * runs inside one step of Lua's garbage collector: its atomic phase walks every table with weak
 * keys and strong values (an ephemeron table) again and again until no more values turn out
 * reachable, which a plugin can make take time quadratic in their entries (seconds to hours),
 * allocating nothing and calling nothing. So a thread of its own looks at every state that runs a
 * call, every YADTQ_WATCH_INTERVAL_NS, and signals the thread of one still running
 * YADTQ_WATCH_GRACE_NS after it should have stopped (its deadline, or when the watchdog first saw
 * its stop request), again at each look until it stops. The signal's handler stops the state as
 * yadtq_stop does, jumping back to the entry point, wherever the thread is in Lua's code. That is
 * safe where yadtq_stop's jump is: stop_target is set only while C code that Lua runs is on the
 * stack (the trampoline clears it while a Swift host function runs), and the state is abandoned,
 * never run again. Two places are not left halfway: the allocator's update of the block list
 * (yadtq_free_all walks it) around libc's malloc, which holds locks, is marked by no_jump, and the
 * handler returns there (the next look signals again). Nothing else that holds a lock runs that
 * long: the other libc calls that take one (os.date and os.time, for the time zone) are function
 * calls, which the hook stops at their start once the deadline has passed, so a thread still
 * running at the grace's end is inside one step no check reaches, not inside such a call. */
#define YADTQ_WATCH_INTERVAL_NS (50u * 1000000u)
#define YADTQ_WATCH_GRACE_NS (500u * 1000000u)
#define YADTQ_STOP_SIGNAL (SIGRTMIN + 4)

static pthread_mutex_t yadtq_watch_lock = PTHREAD_MUTEX_INITIALIZER;
static yadtq_sandbox *yadtq_watched; /* every state's sandbox, from yadtq_newstate to yadtq_free_all */
static pthread_once_t yadtq_watch_once = PTHREAD_ONCE_INIT;
/* The sandbox whose entry point runs on this thread, for the signal handler. */
static _Thread_local yadtq_sandbox *yadtq_calling;

static const char yadtq_watchdog_position[] =
    "\t[no Lua code was running: stopped inside a step the sandbox's checks do not reach, most "
    "likely Lua's garbage collector walking tables with weak keys]";

static void yadtq_on_stop_signal(int signal) {
    (void)signal;
    yadtq_sandbox *sb = yadtq_calling;
    if (sb == NULL || sb->stop_target == NULL || __atomic_load_n(&sb->no_jump, __ATOMIC_RELAXED)) return;
    int why = yadtq_stop_reason(sb);
    if (why == YADTQ_RUNNING) return;
    memcpy(sb->stopped_at, yadtq_watchdog_position, sizeof yadtq_watchdog_position);
    yadtq_stop(sb, why);
}

/* When the call `sb` runs should have stopped, or 0 for not yet: its deadline, or the first look
 * that found its stop request raised (kept per call, by call_serial). Under yadtq_watch_lock. */
static uint64_t yadtq_due_ns(yadtq_sandbox *sb, uint64_t now) {
    uint64_t deadline = __atomic_load_n(&sb->deadline_ns, __ATOMIC_RELAXED);
    if (deadline == 0) return 0;
    unsigned serial = __atomic_load_n(&sb->call_serial, __ATOMIC_RELAXED);
    if (sb->stop_request != NULL && __atomic_load_n(sb->stop_request, __ATOMIC_RELAXED) != 0) {
        if (sb->request_seen_serial != serial || sb->request_seen_ns == 0) {
            sb->request_seen_serial = serial;
            sb->request_seen_ns = now;
        }
        return sb->request_seen_ns < deadline ? sb->request_seen_ns : deadline;
    }
    return deadline;
}

static void *yadtq_watchdog(void *unused) {
    (void)unused;
    for (;;) {
        yadtq_sleep_until(yadtq_now_ns() + YADTQ_WATCH_INTERVAL_NS);
        uint64_t now = yadtq_now_ns();
        pthread_mutex_lock(&yadtq_watch_lock);
        for (yadtq_sandbox *sb = yadtq_watched; sb != NULL; sb = sb->watch_next) {
            if (!__atomic_load_n(&sb->in_call, __ATOMIC_ACQUIRE)) continue;
            uint64_t due = yadtq_due_ns(sb, now);
            /* The thread is alive: it is inside a call, and cannot free the sandbox (which takes
             * the lock) before the signal is sent. */
            if (due != 0 && now >= due + YADTQ_WATCH_GRACE_NS) pthread_kill(sb->thread, YADTQ_STOP_SIGNAL);
        }
        pthread_mutex_unlock(&yadtq_watch_lock);
    }
    return NULL;
}

/* Installs the handler (SA_NODEFER: the handler leaves by a jump, which would leave the signal
 * blocked) and starts the watchdog, once per process. A process that cannot start the thread runs
 * without it, as before: every other check still holds. */
static void yadtq_start_watchdog(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = yadtq_on_stop_signal;
    action.sa_flags = SA_NODEFER | SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(YADTQ_STOP_SIGNAL, &action, NULL) != 0) return;
    pthread_attr_t attributes;
    pthread_t thread;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attributes, yadtq_watchdog, NULL) != 0) {
        fprintf(stderr, "yadtq: the sandbox's watchdog thread could not start: a task stuck in Lua's garbage collector "
                        "is not stopped at its time limit\n");
    }
    pthread_attr_destroy(&attributes);
}

static void yadtq_watch(yadtq_sandbox *sb) {
    pthread_once(&yadtq_watch_once, yadtq_start_watchdog);
    pthread_mutex_lock(&yadtq_watch_lock);
    sb->watch_prev = NULL;
    sb->watch_next = yadtq_watched;
    if (yadtq_watched != NULL) yadtq_watched->watch_prev = sb;
    yadtq_watched = sb;
    sb->watched = 1;
    pthread_mutex_unlock(&yadtq_watch_lock);
}

static void yadtq_unwatch(yadtq_sandbox *sb) {
    pthread_mutex_lock(&yadtq_watch_lock);
    if (sb->watched) {
        if (sb->watch_prev != NULL) sb->watch_prev->watch_next = sb->watch_next; else yadtq_watched = sb->watch_next;
        if (sb->watch_next != NULL) sb->watch_next->watch_prev = sb->watch_prev;
        sb->watched = 0;
    }
    pthread_mutex_unlock(&yadtq_watch_lock);
}

void yadtq_set_deadline(yadtq_sandbox *sb, uint64_t deadline_ns) {
    __atomic_store_n(&sb->deadline_ns, deadline_ns, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------------------------------------- */
/* Time and memory limits as seen from inside Lua.                                                 */

/* Notes where Lua code is (a short traceback of Lua functions), for the timeout's report. Reads the
 * stack without allocating: lua_getinfo with "Sl" writes into the lua_Debug only. */
static void yadtq_note_position(lua_State *L, yadtq_sandbox *sb) {
    lua_Debug ar;
    size_t at = 0;
    sb->stopped_at[0] = 0;
    for (int level = 0, shown = 0; shown < 6 && lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue; /* C functions */
        int n = snprintf(sb->stopped_at + at, sizeof sb->stopped_at - at, "%s\t%s:%d: in function <%s:%d>",
                         shown ? "\n" : "", ar.short_src, ar.currentline, ar.short_src, ar.linedefined);
        if (n < 0 || (size_t)n >= sizeof sb->stopped_at - at) break;
        at += (size_t)n;
        shown++;
    }
}

/* Stops the state for `why`, noting where Lua code was for the report. */
static void yadtq_stop_here(lua_State *L, int why) {
    yadtq_sandbox *sb = yadtq_sandbox_of(L);
    yadtq_note_position(L, sb);
    yadtq_stop(sb, why);
}

/* Stops the state once the deadline has passed or a stop was requested; called by the hook and by
 * C functions that may run long (pattern matching, ...). */
static void yadtq_check_deadline(lua_State *L) {
    int why = yadtq_stop_reason(yadtq_sandbox_of(L));
    if (why != YADTQ_RUNNING) yadtq_stop_here(L, why);
}

/* The hook runs at every function call (Lua or C: a C library call may take long, and many of them
 * can run between two count events) and every few VM instructions (yadtq_hook_count: a single
 * instruction may compare long strings). It never raises a Lua error: Lua disables
 * hooks while a hook runs and while an error raised from one unwinds, so a message handler or a
 * __close handler would then run unchecked. It stops the state instead (yadtq_stop). */
static void yadtq_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    if (yadtq_refusal_pending(yadtq_sandbox_of(L))) yadtq_stop_here(L, YADTQ_STOPPED_MEMORY);
    yadtq_check_deadline(L);
}
static uint64_t yadtq_read_u64(lua_State *L, yadtq_cursor *c) {
    uint64_t v;
    if ((size_t)(c->end - c->at) < sizeof v) luaL_error(L, "corrupt value buffer (plugin runtime bug)");
    memcpy(&v, c->at, sizeof v);
    c->at += sizeof v;
    return v;
}

static void yadtq_push_encoded_string(lua_State *L, yadtq_cursor *c) {
    uint64_t len = yadtq_read_u64(L, c);
    if ((uint64_t)(c->end - c->at) < len) luaL_error(L, "corrupt value buffer (plugin runtime bug)");
    lua_pushlstring(L, (const char *)c->at, (size_t)len);
    c->at += len;
}

static void yadtq_push_encoded(lua_State *L, yadtq_cursor *c, int depth) {
    if (depth > YADTQ_MAX_DEPTH) luaL_error(L, "value nested deeper than %d levels", YADTQ_MAX_DEPTH);
    luaL_checkstack(L, 3, "value nested too deeply");
    if (c->at >= c->end) luaL_error(L, "corrupt value buffer (plugin runtime bug)");
    unsigned char tag = *c->at++;
    switch (tag) {
    case 'n': lua_pushlightuserdata(L, NULL); break;
    case 'f': lua_pushboolean(L, 0); break;
    case 't': lua_pushboolean(L, 1); break;
    case 'i': lua_pushinteger(L, (lua_Integer)yadtq_read_u64(L, c)); break;
    case 'd': {
        uint64_t bits = yadtq_read_u64(L, c);
        double d;
        memcpy(&d, &bits, sizeof d);
        lua_pushnumber(L, d);
        break;
    }
    case 's': yadtq_push_encoded_string(L, c); break;
    case 'a': {
        uint64_t n = yadtq_read_u64(L, c);
        lua_createtable(L, n < INT32_MAX ? (int)n : 0, 0);
        for (uint64_t i = 1; i <= n; i++) {
            yadtq_push_encoded(L, c, depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i);
        }
        break;
    }
    case 'o': {
        uint64_t n = yadtq_read_u64(L, c);
        lua_createtable(L, 0, n < INT32_MAX ? (int)n : 0);
        for (uint64_t i = 0; i < n; i++) {
            yadtq_push_encoded_string(L, c);
            yadtq_push_encoded(L, c, depth + 1);
            lua_rawset(L, -3);
        }
        break;
    }
    default: luaL_error(L, "corrupt value buffer (plugin runtime bug)");
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* The trampoline through which Lua calls Swift. Upvalue 1: index into `yadtq_sandbox.hosts`. */

static int yadtq_trampoline(lua_State *L) {
    yadtq_sandbox *sb = yadtq_sandbox_of(L);
    yadtq_host_fn fn = sb->hosts[lua_tointeger(L, lua_upvalueindex(1))];
    yadtq_reply reply = {NULL, 0};
    /* No stop may jump over the Swift frame: while it runs, the allocator only refuses. */
    void *stop_target = sb->stop_target;
    sb->stop_target = NULL;
    int kind = fn(L, &reply);
    sb->stop_target = stop_target;
    /* A host function that ran into the deadline or a stop request gave up (the value reader looks
     * at the clock as it goes): stop here, as the hook would have. */
    yadtq_check_deadline(L);
    switch (kind) { /* the Swift frame is gone from here on: raising is safe */
    case YADTQ_REPLY_STRING:
        lua_pushlstring(L, reply.data, reply.length);
        return 1;
    case YADTQ_REPLY_VALUE: {
        yadtq_cursor c = {(const unsigned char *)reply.data, (const unsigned char *)reply.data + reply.length};
        yadtq_push_encoded(L, &c, 0);
        return 1;
    }
    case YADTQ_REPLY_ERROR:
        luaL_where(L, 1);
        lua_pushlstring(L, reply.data, reply.length);
        lua_concat(L, 2);
        return lua_error(L);
    default:
        return 0;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Library functions whose work does not depend on the size of their input only, or that loop
 * without calling anything: the hook cannot interrupt a C function, so these count their own work
 * and check the deadline (yadtq_check_deadline) as they go.                                      */

/* string.rep(s, n [, sep]): the result is built by doubling, so its cost is that of writing it,
 * which the memory limit bounds; an empty result costs nothing, whatever `n` (Lua's own string.rep
 * loops `n` times). */
static int yadtq_rep(lua_State *L) {
    size_t length = 0, separator = 0;
    const char *s = luaL_checklstring(L, 1, &length);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &separator);
    if (n <= 0 || length + separator == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    yadtq_sandbox *sb = yadtq_sandbox_of(L);
    double needed = (double)length * (double)n + (double)separator * (double)(n - 1);
    if (needed > (double)(sb->limit - sb->used)) lua_gc(L, LUA_GCCOLLECT, 0); /* as the allocator would */
    if (needed > (double)(sb->limit - sb->used)) yadtq_stop_running(sb, YADTQ_STOPPED_MEMORY);
    size_t total = length * (size_t)n + separator * (size_t)(n - 1);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, total);
    memcpy(out, s, length);
    size_t filled = length;
    if (total > filled) {
        memcpy(out + filled, sep, separator);
        filled += separator;
    }
    while (filled < total) { /* `filled` is a whole number of "s .. sep": copying it keeps the period */
        size_t chunk = filled < total - filled ? filled : total - filled;
        memcpy(out + filled, out, chunk);
        filled += chunk;
    }
    luaL_pushresultsize(&b, total);
    return 1;
}

/* Copies a1[f..e] (e >= f; a1 and a2 are stack indices) to a2[t..] in slices of YADTQ_MOVE_SLICE
 * elements, each a call of Lua's own table.move (upvalue 1 of the calling function), so that the
 * hook checks the deadline between slices: Lua's moves any number of nils without allocating.
 * Slices go in the order Lua's would copy elements. */
#define YADTQ_MOVE_SLICE 1024
static void yadtq_move_in_slices(lua_State *L, int a1, lua_Integer f, lua_Integer e, lua_Integer t, int a2) {
    lua_Integer n = e - f + 1;
    /* One slice needs no direction: not comparing spares a possible __eq call Lua's would not make. */
    int forward = n <= YADTQ_MOVE_SLICE || t > e || t <= f || (a2 != a1 && !lua_compare(L, a1, a2, LUA_OPEQ));
    for (lua_Integer done = 0; done < n; done += YADTQ_MOVE_SLICE) {
        lua_Integer size = n - done < YADTQ_MOVE_SLICE ? n - done : YADTQ_MOVE_SLICE;
        lua_Integer offset = forward ? done : n - done - size;
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_pushvalue(L, a1);
        lua_pushinteger(L, f + offset);
        lua_pushinteger(L, f + offset + size - 1);
        lua_pushinteger(L, t + offset);
        lua_pushvalue(L, a2);
        lua_call(L, 5, 0);
    }
}

/* table.move(a1, f, e, t [, a2]), by yadtq_move_in_slices. Upvalue 1: Lua's table.move. */
static int yadtq_table_move(lua_State *L) {
    /* The checks of Lua's table.move, here so that their messages name 'move' (the original is no
     * longer a library function Lua could name). Only tables reach here: a plugin has no userdata. */
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int tt = !lua_isnoneornil(L, 5) ? 5 : 1;
    luaL_checktype(L, tt, LUA_TTABLE);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        luaL_argcheck(L, t <= LUA_MAXINTEGER - (e - f), 4, "destination wrap around");
        yadtq_move_in_slices(L, 1, f, e, t, tt);
    }
    lua_pushvalue(L, tt);
    return 1;
}

/* table.insert(list, [pos,] value) and table.remove(list [, pos]) as Lua's, with the shift of the
 * elements after `pos` done by yadtq_move_in_slices: Lua's own loop over them takes the length from
 * #list, which a __len metamethod can make 2^63, and runs with no call, instruction or allocation
 * the hook or the allocator could see. Upvalue 1: Lua's table.move. */
static int yadtq_table_insert(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer e = (lua_Integer)((lua_Unsigned)luaL_len(L, 1) + 1u); /* first empty element */
    lua_Integer pos = e;
    switch (lua_gettop(L)) {
    case 2: break;
    case 3:
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
        if (pos < e) yadtq_move_in_slices(L, 1, pos, e - 1, pos + 1, 1);
        break;
    default: return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos); /* the value, on top */
    return 0;
}

static int yadtq_table_remove(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer size = luaL_len(L, 1);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2, "position out of bounds");
    lua_geti(L, 1, pos); /* the result */
    if (pos < size) {
        yadtq_move_in_slices(L, 1, pos + 1, size, pos, 1);
        pos = size;
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

/* table.concat and table.unpack as Lua's, with a deadline check every YADTQ_LOOKUP_CHECK elements:
 * Lua's loop over the elements runs with no call the hook could see, and each element's lookup may
 * walk a chain of up to 2000 __index tables (a string element adds nothing to the result, so the
 * allocator sees nothing either): 200,000 elements behind such a chain took a minute in one call. */
#define YADTQ_LOOKUP_CHECK 1024

/* Pushes list[i] (argument 1), checking the deadline every YADTQ_LOOKUP_CHECK elements. */
static void yadtq_get_element(lua_State *L, lua_Integer i, lua_Integer *count) {
    if (++*count % YADTQ_LOOKUP_CHECK == 0) yadtq_check_deadline(L);
    lua_geti(L, 1, i);
}

static void yadtq_add_concat_field(lua_State *L, luaL_Buffer *b, lua_Integer i, lua_Integer *count) {
    yadtq_get_element(L, i, count);
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid value (%s) at index %I in table for 'concat'", luaL_typename(L, -1), (LUAI_UACINT)i);
    luaL_addvalue(b);
}

/* table.concat(list [, sep [, i [, j]]]). Only tables reach here: a plugin has no userdata. */
static int yadtq_table_concat(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer last = luaL_len(L, 1);
    size_t separator = 0;
    const char *sep = luaL_optlstring(L, 2, "", &separator);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    last = luaL_optinteger(L, 4, last);
    lua_Integer count = 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (; i < last; i++) {
        yadtq_add_concat_field(L, &b, i, &count);
        luaL_addlstring(&b, sep, separator);
    }
    if (i == last) yadtq_add_concat_field(L, &b, i, &count); /* the interval was not empty */
    luaL_pushresult(&b);
    return 1;
}

/* table.unpack(list [, i [, j]]) */
static int yadtq_table_unpack(lua_State *L) {
    lua_Integer i = luaL_optinteger(L, 2, 1);
    lua_Integer e = luaL_opt(L, luaL_checkinteger, 3, luaL_len(L, 1));
    if (i > e) return 0;
    lua_Unsigned n = (lua_Unsigned)e - (lua_Unsigned)i; /* elements minus 1, without overflow */
    if (n >= (unsigned int)INT_MAX || !lua_checkstack(L, (int)(++n)))
        return luaL_error(L, "too many results to unpack");
    lua_Integer count = 0;
    for (; i < e; i++) yadtq_get_element(L, i, &count); /* up to e - 1, which cannot overflow */
    yadtq_get_element(L, e, &count);
    return (int)n;
}

/* The default order of table.sort as a function: each comparison is then a call, which the hook
 * sees, where Lua's sort would compare a few million strings without one. */
static int yadtq_less_than(lua_State *L) {
    lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPLT));
    return 1;
}

/* table.sort(list [, comp]). Upvalue 1: the original; upvalue 2: yadtq_less_than. */
static int yadtq_table_sort(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE); /* here, so that the message names 'sort' */
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_pushvalue(L, lua_upvalueindex(2));
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 0);
    return 0;
}

/* Pattern matching (string.find, match, gmatch, gsub), written for the sandbox: the same patterns
 * and results as Lua's (manual §6.4.1), but the matcher counts its steps (a backtracking match can
 * take exponential time on a short string) and checks the deadline every YADTQ_MATCH_CHECK. */
#define YADTQ_MAX_CAPTURES 32   /* LUA_MAXCAPTURES */
#define YADTQ_MATCH_DEPTH 200   /* nested pattern items before "pattern too complex", as Lua */
#define YADTQ_MATCH_CHECK 4096  /* steps between two deadline checks */
#define YADTQ_CAP_UNFINISHED (-1)
#define YADTQ_CAP_POSITION (-2)

typedef struct yadtq_matcher {
    lua_State *L;
    const char *src, *src_end, *pat_end;
    int depth;     /* how many more nested items may be matched */
    int level;     /* captures open or closed so far */
    size_t steps;  /* since the last deadline check */
    struct {
        const char *start;
        ptrdiff_t length; /* or YADTQ_CAP_* */
    } capture[YADTQ_MAX_CAPTURES];
} yadtq_matcher;

/* Counts `n` steps of work (a step is about one byte compared). */
static void yadtq_match_steps(yadtq_matcher *m, size_t n) {
    m->steps += n;
    if (m->steps >= YADTQ_MATCH_CHECK) {
        m->steps = 0;
        yadtq_check_deadline(m->L);
    }
}

static void yadtq_matcher_init(yadtq_matcher *m, lua_State *L, const char *s, size_t ls,
                                      const char *p, size_t lp) {
    m->L = L;
    m->src = s;
    m->src_end = s + ls;
    m->pat_end = p + lp;
    m->steps = 0;
}

static void yadtq_matcher_reset(yadtq_matcher *m) {
    m->level = 0;
    m->depth = YADTQ_MATCH_DEPTH;
}

/* Whether byte `c` is in class `cl` (the letter after '%'; an upper-case letter is the complement;
 * any other character stands for itself). */
static int yadtq_class_matches(int c, int cl) {
    int in;
    switch (tolower(cl)) {
    case 'a': in = isalpha(c); break;
    case 'c': in = iscntrl(c); break;
    case 'd': in = isdigit(c); break;
    case 'g': in = isgraph(c); break;
    case 'l': in = islower(c); break;
    case 'p': in = ispunct(c); break;
    case 's': in = isspace(c); break;
    case 'u': in = isupper(c); break;
    case 'w': in = isalnum(c); break;
    case 'x': in = isxdigit(c); break;
    case 'z': in = c == 0; break; /* deprecated, still accepted by Lua 5.4 */
    default: return cl == c;
    }
    return isupper(cl) ? !in : in != 0;
}

/* Where the single-character class starting at `p` ends. Patterns are Lua strings, so reading the
 * byte at `pat_end` (a terminating zero) is safe. A set `[...]` is walked to its end, which counts
 * as steps: the set may be megabytes long, and its end is looked for at every try. */
static const char *yadtq_class_end(yadtq_matcher *m, const char *p) {
    const char *start = p;
    char c = *p++;
    if (c == '%') {
        if (p >= m->pat_end) luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (*p == '^') p++;
        do { /* the first character may be ']' itself */
            if (p >= m->pat_end) luaL_error(m->L, "malformed pattern (missing ']')");
            c = *p++;
            if (c == '%' && p < m->pat_end) p++;
        } while (*p != ']');
        yadtq_match_steps(m, (size_t)(p - start));
        return p + 1;
    }
    return p;
}

/* Whether byte `c` is in the set `[...]` from `p` (the '[') to `last` (the ']'). The set's length
 * counts as steps (see yadtq_class_end). */
static int yadtq_set_matches(yadtq_matcher *m, int c, const char *p, const char *last) {
    yadtq_match_steps(m, (size_t)(last - p));
    int in = 1;
    if (p[1] == '^') {
        in = 0;
        p++;
    }
    while (++p < last) {
        if (*p == '%') {
            p++;
            if (yadtq_class_matches(c, (unsigned char)*p)) return in;
        } else if (p[1] == '-' && p + 2 < last) {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2]) return in;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return in;
        }
    }
    return !in;
}

static int yadtq_single_matches(yadtq_matcher *m, const char *s, const char *p, const char *ep) {
    if (s >= m->src_end) return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case '%': return yadtq_class_matches(c, (unsigned char)p[1]);
    case '[': return yadtq_set_matches(m, c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static const char *yadtq_match(yadtq_matcher *m, const char *s, const char *p);

/* `item*` and `item+` (after its first repetition): longest run first, then shorter ones. */
static inline const char *yadtq_match_longest(yadtq_matcher *m, const char *s, const char *p, const char *ep) {
    ptrdiff_t n = 0;
    while (yadtq_single_matches(m, s + n, p, ep)) {
        n++;
        yadtq_match_steps(m, 1);
    }
    for (; n >= 0; n--) {
        const char *end = yadtq_match(m, s + n, ep + 1);
        if (end) return end;
        yadtq_match_steps(m, 1);
    }
    return NULL;
}

/* `item-`: shortest run first. */
static const char *yadtq_match_shortest(yadtq_matcher *m, const char *s, const char *p, const char *ep) {
    for (;;) {
        const char *end = yadtq_match(m, s, ep + 1);
        if (end) return end;
        if (!yadtq_single_matches(m, s, p, ep)) return NULL;
        s++;
        yadtq_match_steps(m, 1);
    }
}

static const char *yadtq_open_capture(yadtq_matcher *m, const char *s, const char *p, ptrdiff_t what) {
    if (m->level >= YADTQ_MAX_CAPTURES) luaL_error(m->L, "too many captures");
    m->capture[m->level].start = s;
    m->capture[m->level].length = what;
    m->level++;
    const char *end = yadtq_match(m, s, p);
    if (!end) m->level--;
    return end;
}

static const char *yadtq_close_capture(yadtq_matcher *m, const char *s, const char *p) {
    int open = m->level - 1;
    while (open >= 0 && m->capture[open].length != YADTQ_CAP_UNFINISHED) open--;
    if (open < 0) luaL_error(m->L, "invalid pattern capture");
    m->capture[open].length = s - m->capture[open].start;
    const char *end = yadtq_match(m, s, p);
    if (!end) m->capture[open].length = YADTQ_CAP_UNFINISHED;
    return end;
}

/* `%bxy` at `p` (pointing at x). */
static const char *yadtq_match_balance(yadtq_matcher *m, const char *s, const char *p) {
    if (p + 1 >= m->pat_end) luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->src_end || *s != *p) return NULL;
    int depth = 1;
    while (++s < m->src_end) {
        yadtq_match_steps(m, 1);
        if (*s == p[1]) {
            if (--depth == 0) return s + 1;
        } else if (*s == *p) {
            depth++;
        }
    }
    return NULL;
}

/* `%1`..`%9`: the text of an earlier capture, again. */
static const char *yadtq_match_back_reference(yadtq_matcher *m, const char *s, int digit) {
    int index = digit - '1';
    if (index < 0 || index >= m->level || m->capture[index].length == YADTQ_CAP_UNFINISHED)
        luaL_error(m->L, "invalid capture index %%%d", index + 1);
    ptrdiff_t length = m->capture[index].length;
    if (length < 0) return NULL; /* a position capture */
    yadtq_match_steps(m, 1 + (size_t)length / 16);
    if (m->src_end - s >= length && memcmp(m->capture[index].start, s, (size_t)length) == 0) return s + length;
    return NULL;
}

/* Matches pattern `p` (to `pat_end`) at `s`: the end of the match, or NULL. */
static const char *yadtq_match(yadtq_matcher *m, const char *s, const char *p) {
    if (m->depth-- == 0) luaL_error(m->L, "pattern too complex");
    for (;;) {
        yadtq_match_steps(m, 1);
        if (p == m->pat_end) break;
        if (*p == '(') {
            s = p[1] == ')' ? yadtq_open_capture(m, s, p + 2, YADTQ_CAP_POSITION)
                            : yadtq_open_capture(m, s, p + 1, YADTQ_CAP_UNFINISHED);
            break;
        }
        if (*p == ')') {
            s = yadtq_close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->pat_end) {
            if (s != m->src_end) s = NULL;
            break;
        }
        if (*p == '%' && p[1] == 'b') {
            s = yadtq_match_balance(m, s, p + 2);
            if (!s) break;
            p += 4;
            continue;
        }
        if (*p == '%' && p[1] == 'f') {
            p += 2;
            if (*p != '[') luaL_error(m->L, "missing '[' after '%%f' in pattern");
            const char *ep = yadtq_class_end(m, p);
            int before = s == m->src ? 0 : (unsigned char)s[-1];
            int at = s < m->src_end ? (unsigned char)*s : 0;
            if (!yadtq_set_matches(m, before, p, ep - 1) && yadtq_set_matches(m, at, p, ep - 1)) {
                p = ep;
                continue;
            }
            s = NULL;
            break;
        }
        if (*p == '%' && isdigit((unsigned char)p[1])) {
            s = yadtq_match_back_reference(m, s, (unsigned char)p[1]);
            if (!s) break;
            p += 2;
            continue;
        }
        const char *ep = yadtq_class_end(m, p);
        if (!yadtq_single_matches(m, s, p, ep)) {
            if (*ep == '*' || *ep == '?' || *ep == '-') { /* zero repetitions are fine */
                p = ep + 1;
                continue;
            }
            s = NULL;
            break;
        }
        if (*ep == '?') {
            const char *end = yadtq_match(m, s + 1, ep + 1);
            if (end) {
                s = end;
                break;
            }
            p = ep + 1;
            continue;
        }
        if (*ep == '+') {
            s = yadtq_match_longest(m, s + 1, p, ep);
            break;
        }
        if (*ep == '*') {
            s = yadtq_match_longest(m, s, p, ep);
            break;
        }
        if (*ep == '-') {
            s = yadtq_match_shortest(m, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    m->depth++;
    return s;
}

/* Pushes capture `i` of the match `s..e` (the whole match when the pattern has no captures). */
static void yadtq_push_capture(yadtq_matcher *m, int i, const char *s, const char *e) {
    if (i >= m->level) {
        if (i != 0) luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t length = m->capture[i].length;
    if (length == YADTQ_CAP_UNFINISHED) luaL_error(m->L, "unfinished capture");
    if (length == YADTQ_CAP_POSITION)
        lua_pushinteger(m->L, (m->capture[i].start - m->src) + 1);
    else
        lua_pushlstring(m->L, m->capture[i].start, (size_t)length);
}

/* Pushes all captures (or, with `s`, the whole match when there are none); returns their number. */
static int yadtq_push_captures(yadtq_matcher *m, const char *s, const char *e) {
    int n = (m->level == 0 && s) ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++) yadtq_push_capture(m, i, s, e);
    return n;
}

/* A start index as string.find takes it (negative: from the end), clamped to 1. */
static size_t yadtq_start_index(lua_Integer pos, size_t length) {
    if (pos > 0) return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)length) return 1;
    return length + (size_t)pos + 1;
}

static int yadtq_has_specials(const char *p, size_t lp) {
    for (size_t i = 0; i < lp; i++)
        if (p[i] && strchr("^$*+?.([%-", p[i])) return 1;
    return 0;
}

/* Plain substring search; its cost is up to #s * #p byte comparisons, so it counts them. */
static const char *yadtq_find_plain(yadtq_matcher *m, const char *s, size_t ls, const char *p, size_t lp) {
    if (lp == 0) return s;
    if (lp > ls) return NULL;
    const char *last = s + (ls - lp);
    while (s <= last) {
        const char *hit = (const char *)memchr(s, *p, (size_t)(last - s) + 1);
        if (!hit) return NULL;
        yadtq_match_steps(m, 1 + (size_t)(hit - s) / 64 + lp / 16);
        if (memcmp(hit + 1, p + 1, lp - 1) == 0) return hit;
        s = hit + 1;
    }
    return NULL;
}

static int yadtq_find_or_match(lua_State *L, int find) {
    size_t ls = 0, lp = 0;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = yadtq_start_index(luaL_optinteger(L, 3, 1), ls);
    if (init > ls + 1) {
        luaL_pushfail(L);
        return 1;
    }
    yadtq_matcher m;
    yadtq_matcher_init(&m, L, s, ls, p, lp);
    if (find && (lua_toboolean(L, 4) || !yadtq_has_specials(p, lp))) {
        const char *hit = yadtq_find_plain(&m, s + init - 1, ls - init + 1, p, lp);
        if (hit) {
            lua_pushinteger(L, (hit - s) + 1);
            lua_pushinteger(L, (lua_Integer)((size_t)(hit - s) + lp));
            return 2;
        }
    } else {
        int anchor = *p == '^';
        if (anchor) p++;
        const char *at = s + init - 1;
        do {
            yadtq_matcher_reset(&m);
            const char *end = yadtq_match(&m, at, p);
            if (end) {
                if (!find) return yadtq_push_captures(&m, at, end);
                lua_pushinteger(L, (at - s) + 1);
                lua_pushinteger(L, end - s);
                return yadtq_push_captures(&m, NULL, NULL) + 2;
            }
        } while (at++ < m.src_end && !anchor);
    }
    luaL_pushfail(L);
    return 1;
}

static int yadtq_str_find(lua_State *L) { return yadtq_find_or_match(L, 1); }
static int yadtq_str_match(lua_State *L) { return yadtq_find_or_match(L, 0); }

/* The state of one string.gmatch iteration (a userdata, upvalue 3 of the iterator; upvalues 1 and 2
 * keep the subject and the pattern alive). */
typedef struct yadtq_gmatch {
    yadtq_matcher m;
    const char *at;
    const char *last_end; /* end of the last match: an empty match there does not count again */
} yadtq_gmatch;

static int yadtq_gmatch_next(lua_State *L) {
    yadtq_gmatch *g = (yadtq_gmatch *)lua_touserdata(L, lua_upvalueindex(3));
    size_t lp = 0;
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    g->m.L = L; /* the iterator may be called from another coroutine */
    for (; g->at <= g->m.src_end; g->at++) {
        yadtq_matcher_reset(&g->m);
        const char *end = yadtq_match(&g->m, g->at, p);
        if (end && end != g->last_end) {
            const char *start = g->at;
            g->at = g->last_end = end;
            return yadtq_push_captures(&g->m, start, end);
        }
    }
    return 0;
}

static int yadtq_str_gmatch(lua_State *L) {
    size_t ls = 0, lp = 0;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = yadtq_start_index(luaL_optinteger(L, 3, 1), ls);
    if (init > ls + 1) init = ls + 2; /* past the end: no match, not even an empty one */
    lua_settop(L, 2);
    yadtq_gmatch *g = (yadtq_gmatch *)lua_newuserdatauv(L, sizeof(yadtq_gmatch), 0);
    yadtq_matcher_init(&g->m, L, s, ls, p, lp);
    g->at = s + init - 1;
    g->last_end = NULL;
    lua_pushcclosure(L, yadtq_gmatch_next, 3);
    return 1;
}

/* Appends the replacement string (argument 3) for the match `s..e`, with its %0..%9 and %%. Each
 * escape counts as a step: for an empty match, "%0" adds nothing, so a long replacement would cost
 * time at every match without growing the result the allocator watches. */
static void yadtq_add_replacement_string(yadtq_matcher *m, luaL_Buffer *b, const char *s, const char *e) {
    lua_State *L = m->L;
    size_t length = 0;
    const char *text = lua_tolstring(L, 3, &length);
    const char *percent;
    while ((percent = (const char *)memchr(text, '%', length)) != NULL) {
        yadtq_match_steps(m, 1);
        luaL_addlstring(b, text, (size_t)(percent - text));
        percent++;
        if (*percent == '%') {
            luaL_addchar(b, '%');
        } else if (*percent == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit((unsigned char)*percent)) {
            yadtq_push_capture(m, *percent - '1', s, e);
            luaL_tolstring(L, -1, NULL);
            lua_remove(L, -2);
            luaL_addvalue(b);
        } else {
            luaL_error(L, "invalid use of '%%' in replacement string");
        }
        length -= (size_t)(percent + 1 - text);
        text = percent + 1;
    }
    luaL_addlstring(b, text, length);
}

/* Appends the replacement of match `s..e`; returns whether it differs from the match. */
static int yadtq_add_replacement(yadtq_matcher *m, luaL_Buffer *b, const char *s, const char *e, int type) {
    lua_State *L = m->L;
    if (type == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = yadtq_push_captures(m, s, e);
        lua_call(L, n, 1);
    } else if (type == LUA_TTABLE) {
        yadtq_push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        yadtq_add_replacement_string(m, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: keep the match */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

static int yadtq_str_gsub(lua_State *L) {
    size_t ls = 0, lp = 0;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int type = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L, type == LUA_TNUMBER || type == LUA_TSTRING || type == LUA_TFUNCTION || type == LUA_TTABLE,
                     3, "string/function/table");
    int anchor = *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    yadtq_matcher m;
    yadtq_matcher_init(&m, L, s, ls, p, lp);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *at = s, *last_end = NULL;
    lua_Integer n = 0;
    int changed = 0;
    while (n < max) {
        yadtq_matcher_reset(&m);
        const char *end = yadtq_match(&m, at, p);
        if (end && end != last_end) {
            n++;
            changed = yadtq_add_replacement(&m, &b, at, end, type) | changed;
            at = last_end = end;
        } else if (at < m.src_end) {
            luaL_addchar(&b, *at++);
        } else {
            break;
        }
        if (anchor) break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, at, (size_t)(m.src_end - at));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

/* Coroutines: the running thread changes only through resume, close and the functions wrap makes,
 * so these keep sb->running, which a long string's allocation updates (yadtq_alloc), and bring the
 * hook count of each thread they switch to up to date: a long string made in one thread may be
 * compared in another. */

/* Whether resuming or closing `co` from L runs code of `co`: it is not L, nor a coroutine that
 * resumed L (those calls fail at once). */
static int yadtq_switches_to(lua_State *L, lua_State *co) {
    lua_Debug ar;
    return co != L && !(lua_status(co) == LUA_OK && lua_getstack(co, 0, &ar));
}

/* Calls the function at stack index 1 (Lua's resume or close) with the arguments above it, `co`
 * first, as the running thread while it runs code of `co`. */
static void yadtq_call_in(lua_State *L, lua_State *co) {
    yadtq_sandbox *sb = yadtq_sandbox_of(L);
    if (yadtq_switches_to(L, co)) yadtq_run_in(sb, co);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    yadtq_run_in(sb, L);
}

/* Raises the error on top, which a call failed with `status`: a string message with the position
 * of the Lua code that called the running C function, as luaL_error there would have given it. */
static int yadtq_error_at_caller(lua_State *L, int status) {
    if (status != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

/* coroutine.resume(co, ...) and coroutine.close(co). Upvalue 1: Lua's. When no code of `co` would
 * run, Lua's only answers, or raises (closing a running or normal coroutine) with the position of
 * its caller, this C function, which has none: it is called protected, and its error raised again
 * with the position of the Lua code that called this. */
static int yadtq_co_switch(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTHREAD); /* here, so that the message names the function */
    lua_State *co = lua_tothread(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    if (!yadtq_switches_to(L, co)) {
        int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
        return status == LUA_OK ? lua_gettop(L) : yadtq_error_at_caller(L, status);
    }
    yadtq_call_in(L, co);
    return lua_gettop(L);
}

/* The function coroutine.wrap returns, as Lua's: resumes its coroutine (upvalue 1) with Lua's
 * coroutine.resume (upvalue 2) and returns what that yields or returns, or raises its error: with
 * the caller's position if it is a string, after closing the to-be-closed variables of a coroutine
 * that failed. */
static int yadtq_co_wrapped(lua_State *L) {
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_rotate(L, 1, 2);
    yadtq_call_in(L, co);
    int resumed = lua_toboolean(L, 1);
    lua_remove(L, 1);
    if (resumed) return lua_gettop(L);
    int status = lua_status(co);
    if (status != LUA_OK && status != LUA_YIELD) {
        yadtq_sandbox *sb = yadtq_sandbox_of(L);
        yadtq_run_in(sb, co);
        status = lua_resetthread(co);
        yadtq_run_in(sb, L);
        lua_xmove(co, L, 1);
    }
    return yadtq_error_at_caller(L, status);
}

/* coroutine.wrap(f). Upvalue 1: Lua's coroutine.resume. */
static int yadtq_co_wrap(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, yadtq_co_wrapped, 2);
    return 1;
}

/* ---------------------------------------------------------------------------------------------- */
/* The sandbox: the globals a plugin sees.                                                         */

/* __newindex of the read-only library proxies. Upvalue 1: the library's name. */
static int yadtq_readonly_newindex(lua_State *L) {
    return luaL_error(L, "attempt to modify read-only library '%s' (plugins share it; keep your own "
                         "values in locals or globals)", lua_tostring(L, lua_upvalueindex(1)));
}

/* The iterator that __pairs of a read-only proxy returns: next() over the real table, which stays
 * hidden (returning `next, real` would hand the real table out). Upvalue 1: the real table. */
static int yadtq_readonly_next(lua_State *L) {
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1))) return 2;
    lua_pushnil(L);
    return 1;
}

/* __pairs of the read-only proxies, so pairs(math) lists the library. Upvalue 1: the iterator. */
static int yadtq_readonly_pairs(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* Replaces the table on top of the stack with a read-only proxy of it, stored as base[name]. */
static void yadtq_set_readonly(lua_State *L, int base, const char *name) {
    lua_newtable(L);                    /* proxy */
    lua_createtable(L, 0, 4);           /* its metatable */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_pushcclosure(L, yadtq_readonly_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, -3);
    lua_pushcclosure(L, yadtq_readonly_next, 1);
    lua_pushcclosure(L, yadtq_readonly_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_setfield(L, base, name);
    lua_pop(L, 1);
}

/* The reader through which load parses a chunk: hands it out in pieces of at most YADTQ_LOAD_PIECE
 * bytes. Lua's parser runs no hook, but calls its reader for more text, a call the hook sees: so a
 * long text is parsed under the time limit too, whether load got it as one string or from a reader
 * function, which may return any length at once. A piece is small because a byte can cost the
 * parser much: a name looked up through 150 nested functions of 190 locals each costs 25 ms per KiB
 * (64 KiB pieces ran 1.6 s each), while an ordinary text parses at 30 ns a byte in 1 KiB pieces as
 * fast as in 64 KiB ones. Upvalue 1: the text being handed out (nil before the first piece of a
 * reader function); upvalue 2: bytes of it handed out; upvalue 3: the plugin's reader function, or
 * nil for a string chunk. */
#define YADTQ_LOAD_PIECE 1024
static int yadtq_load_piece(lua_State *L) {
    size_t length = 0;
    const char *text = lua_tolstring(L, lua_upvalueindex(1), &length);
    size_t at = (size_t)lua_tointeger(L, lua_upvalueindex(2));
    if (at >= length) {
        if (lua_isnil(L, lua_upvalueindex(3))) return 0;
        lua_pushvalue(L, lua_upvalueindex(3));
        lua_call(L, 0, 1);
        if (lua_type(L, -1) != LUA_TSTRING) return 1; /* nil ends the chunk; Lua's load judges the rest */
        text = lua_tolstring(L, -1, &length);
        at = 0;
        lua_replace(L, lua_upvalueindex(1));
    }
    size_t n = length - at < YADTQ_LOAD_PIECE ? length - at : YADTQ_LOAD_PIECE;
    lua_pushinteger(L, (lua_Integer)(at + n));
    lua_replace(L, lua_upvalueindex(2));
    lua_pushlstring(L, text + at, n);
    return 1;
}

/* load(chunk [, chunkname [, mode [, env]]]): text only; without `env`, the chunk gets a fresh
 * sandbox environment; the chunk is read through yadtq_load_piece. Upvalue 1: the original load. */
static int yadtq_safe_load(lua_State *L) {
    const char *mode = luaL_optstring(L, 3, "t");
    if (strcmp(mode, "t") != 0)
        return luaL_error(L, "load: binary chunks are not allowed in plugins (mode must be \"t\", got \"%s\")", mode);
    int has_env = !lua_isnone(L, 4);
    lua_settop(L, 4);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    if (!has_env) {
        lua_newtable(L);
        lua_rawgeti(L, LUA_REGISTRYINDEX, yadtq_sandbox_of(L)->envmeta_ref);
        lua_setmetatable(L, -2);
        lua_replace(L, 4);
    }
    int type = lua_type(L, 1);
    if (type == LUA_TSTRING || type == LUA_TFUNCTION) {
        if (type == LUA_TSTRING && lua_isnil(L, 2)) { /* Lua names a text chunk after its text: keep that name */
            lua_pushvalue(L, 1);
            lua_replace(L, 2);
        }
        if (type == LUA_TSTRING) {
            lua_pushvalue(L, 1);
            lua_pushinteger(L, 0);
            lua_pushnil(L);
        } else {
            lua_pushnil(L);
            lua_pushinteger(L, 0);
            lua_pushvalue(L, 1);
        }
        lua_pushcclosure(L, yadtq_load_piece, 3);
        lua_replace(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 4, LUA_MULTRET);
    return lua_gettop(L);
}

/* setmetatable without __gc: finalizers run outside any task's time limit (hooks are off during
 * garbage collection), possibly while the state is being closed. Upvalue 1: the original. */
static int yadtq_safe_setmetatable(lua_State *L) {
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc metamethods are not allowed in plugins");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* task.progress(fraction) */
static int yadtq_task_progress(lua_State *L) {
    lua_Number f = luaL_checknumber(L, 1);
    if (!(f >= 0 && f <= 1))
        return luaL_error(L, "task.progress: fraction must be between 0 and 1, got %f", f);
    yadtq_sandbox *sb = yadtq_sandbox_of(L);
    sb->progress = f;
    sb->has_progress = 1;
    return 0;
}

/* task.sleep sleeps in slices of at most this long, so that a stop request ends it soon. */
#define YADTQ_SLEEP_SLICE_NS 50000000u
/* task.sleep(seconds): sleeps the worker thread, but never past the task's deadline, and only until
 * a stop is requested. The clock is read precisely here: the sleep ends exactly at its deadline. */
static int yadtq_task_sleep(lua_State *L) {
    lua_Number s = luaL_checknumber(L, 1);
    if (!(s >= 0)) return luaL_error(L, "task.sleep: seconds must be a non-negative number");
    yadtq_sandbox *sb = yadtq_sandbox_of(L);
    uint64_t now = yadtq_now_ns();
    uint64_t span = s >= 1e9 ? UINT64_MAX / 2 : (uint64_t)(s * 1e9);
    uint64_t wake = now + span;
    for (;;) {
        if (yadtq_cancel_requested(sb)) yadtq_stop_here(L, YADTQ_STOPPED_CANCELLED);
        if (sb->deadline_ns != 0 && now >= sb->deadline_ns) yadtq_stop_here(L, YADTQ_STOPPED_TIME);
        if (now >= wake) return 0;
        uint64_t until = wake;
        if (sb->deadline_ns != 0 && until > sb->deadline_ns) until = sb->deadline_ns;
        if (until - now > YADTQ_SLEEP_SLICE_NS) until = now + YADTQ_SLEEP_SLICE_NS;
        yadtq_sleep_until(until);
        now = yadtq_now_ns();
    }
}

static void yadtq_push_host(lua_State *L, int host) {
    lua_pushinteger(L, host);
    lua_pushcclosure(L, yadtq_trampoline, 1);
}

/* target[name] = `wrapper` closing over source[name] (the original function). */
static void yadtq_wrap(lua_State *L, int target, int source, const char *name, lua_CFunction wrapper) {
    lua_getfield(L, source, name);
    lua_pushcclosure(L, wrapper, 1);
    lua_setfield(L, target, name);
}

static void yadtq_copy_fields(lua_State *L, int target, int source, const char *const *names) {
    for (; *names; names++) {
        lua_getfield(L, source, *names);
        lua_setfield(L, target, *names);
    }
}

/* Protected part of yadtq_newstate: builds the sandbox. Keeps, in the registry:
 *   envmeta = { __index = base, __metatable = false }  -- metatable of every plugin environment
 *   task_meta = { __index = { log, progress, sleep }, __metatable = false }  -- of `task`
 * The real global table keeps the full standard libraries; no plugin can reach it. */
static int yadtq_open_sandbox_body(lua_State *L) {
    static const char *const base_functions[] = {
        "assert", "error", "getmetatable", "ipairs", "next", "pairs", "rawequal", "rawget", "rawlen",
        "select", "tonumber", "tostring", "type", "_VERSION", NULL};
    static const char *const plain_libraries[] = {
        LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME, LUA_UTF8LIBNAME, NULL};
    static const char *const os_functions[] = {"clock", "date", "time", NULL};
    static const char *const coroutine_functions[] = {
        "close", "create", "isyieldable", "resume", "running", "status", "wrap", "yield", NULL};

    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 1);
    luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 1);
    lua_settop(L, 0);

    /* No string.dump, in the library nor through the strings' metatable (same table), and the
     * strings' metatable cannot be fetched or changed. */
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    /* Functions whose work the hook cannot bound, replaced (see yadtq_rep and below). */
    static const luaL_Reg bounded_string_functions[] = {
        {"rep", yadtq_rep}, {"find", yadtq_str_find}, {"match", yadtq_str_match},
        {"gmatch", yadtq_str_gmatch}, {"gsub", yadtq_str_gsub}, {NULL, NULL}};
    luaL_setfuncs(L, bounded_string_functions, 0);
    lua_getglobal(L, LUA_TABLIBNAME);
    static const luaL_Reg bounded_table_functions[] = {
        {"move", yadtq_table_move}, {"insert", yadtq_table_insert}, {"remove", yadtq_table_remove}, {NULL, NULL}};
    lua_getfield(L, -1, "move"); /* their upvalue */
    luaL_setfuncs(L, bounded_table_functions, 1);
    static const luaL_Reg checked_table_functions[] = {
        {"concat", yadtq_table_concat}, {"unpack", yadtq_table_unpack}, {NULL, NULL}};
    luaL_setfuncs(L, checked_table_functions, 0);
    lua_getfield(L, -1, "sort");
    lua_pushcfunction(L, yadtq_less_than);
    lua_pushcclosure(L, yadtq_table_sort, 2);
    lua_setfield(L, -2, "sort");
    lua_pop(L, 1);
    lua_getglobal(L, LUA_COLIBNAME);
    lua_getfield(L, -1, "close");
    lua_pushcclosure(L, yadtq_co_switch, 1);
    lua_setfield(L, -2, "close");
    lua_getfield(L, -1, "resume");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, yadtq_co_wrap, 1);
    lua_setfield(L, -3, "wrap");
    lua_pushcclosure(L, yadtq_co_switch, 1);
    lua_setfield(L, -2, "resume");
    lua_pop(L, 1);
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_settop(L, 0);

    lua_pushglobaltable(L); /* 1: real globals */
    lua_newtable(L);        /* 2: base */
    yadtq_copy_fields(L, 2, 1, base_functions);
    lua_getfield(L, 1, "pcall");
    lua_setfield(L, 2, "pcall");
    lua_getfield(L, 1, "xpcall");
    lua_setfield(L, 2, "xpcall");
    yadtq_wrap(L, 2, 1, "load", yadtq_safe_load);
    yadtq_wrap(L, 2, 1, "setmetatable", yadtq_safe_setmetatable);
    yadtq_push_host(L, YADTQ_HOST_LOG);
    lua_setfield(L, 2, "print");

    for (const char *const *lib = plain_libraries; *lib; lib++) {
        lua_getfield(L, 1, *lib);
        yadtq_set_readonly(L, 2, *lib);
    }

    lua_getfield(L, 1, LUA_OSLIBNAME); /* 3 */
    lua_newtable(L);                   /* 4 */
    yadtq_copy_fields(L, 4, 3, os_functions);
    yadtq_set_readonly(L, 2, LUA_OSLIBNAME);
    lua_settop(L, 2);

    lua_getfield(L, 1, LUA_COLIBNAME); /* 3 */
    lua_newtable(L);                   /* 4 */
    yadtq_copy_fields(L, 4, 3, coroutine_functions);
    yadtq_set_readonly(L, 2, LUA_COLIBNAME);
    lua_settop(L, 2);

    lua_createtable(L, 0, 3); /* 3: json */
    yadtq_push_host(L, YADTQ_HOST_JSON_ENCODE);
    lua_setfield(L, 3, "encode");
    yadtq_push_host(L, YADTQ_HOST_JSON_DECODE);
    lua_setfield(L, 3, "decode");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, 3, "null");
    yadtq_set_readonly(L, 2, "json");

    yadtq_sandbox *sb = yadtq_sandbox_of(L);
    lua_createtable(L, 0, 2); /* envmeta */
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    sb->envmeta_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_createtable(L, 0, 2); /* task_meta */
    lua_createtable(L, 0, 3);
    yadtq_push_host(L, YADTQ_HOST_LOG);
    lua_setfield(L, -2, "log");
    lua_pushcfunction(L, yadtq_task_progress);
    lua_setfield(L, -2, "progress");
    lua_pushcfunction(L, yadtq_task_sleep);
    lua_setfield(L, -2, "sleep");
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    sb->task_meta_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Plugins: a compiled chunk is kept in the registry (by ref) and run afresh for every task, in a
 * fresh environment, so neither globals nor the chunk's top-level locals outlive a task.           */

#define YADTQ_MAX_ERROR_BYTES 4096

/* Message handler of every protected call: makes any error object readable, adds a traceback. */
static int yadtq_message_handler(lua_State *L) {
    int t = lua_type(L, 1);
    if (t == LUA_TNIL) {
        lua_pushliteral(L, "error() was called without a message");
    } else if (t == LUA_TTABLE && luaL_getmetafield(L, 1, "__tostring") == LUA_TNIL &&
               (lua_pushliteral(L, "message"), lua_rawget(L, 1)) != LUA_TSTRING) {
        /* A table without a message: show its first fields, e.g. `{code = 42, why = "x"}`.
         * (No luaL_Buffer: its box must stay on top, and lua_next needs the stack.) */
        lua_pushliteral(L, "error object is a table: {");
        int text = lua_gettop(L), n = 0;
        lua_pushnil(L);
        while (lua_next(L, 1)) {
            if (n++ == 8) {
                lua_pop(L, 2);
                lua_pushliteral(L, ", ...");
                lua_concat(L, 2);
                break;
            }
            int quoted = lua_type(L, -1) == LUA_TSTRING;
            lua_pushvalue(L, text);
            lua_pushstring(L, n > 1 ? ", " : "");
            luaL_tolstring(L, -4, NULL);
            lua_pushstring(L, quoted ? " = \"" : " = ");
            luaL_tolstring(L, -5, NULL);
            lua_pushstring(L, quoted ? "\"" : "");
            lua_concat(L, 6);
            lua_replace(L, text);
            lua_pop(L, 1);
        }
        lua_pushliteral(L, "}");
        lua_concat(L, 2);
    } else if (t == LUA_TTABLE && lua_type(L, -1) == LUA_TSTRING) {
        /* a table with a string `message` field: that message (already on top) */
    } else {
        luaL_tolstring(L, 1, NULL); /* strings, numbers, __tostring, "function: 0x..." */
    }
    /* Swift keeps at most 4 KiB of a message (PluginSandbox.maximumErrorBytes): cut it here already,
     * so the traceback below does not copy a message of any size. */
    size_t length = 0;
    const char *message = lua_tolstring(L, -1, &length);
    yadtq_sandbox_of(L)->error_length = length;
    if (length > YADTQ_MAX_ERROR_BYTES) {
        lua_pushlstring(L, message, YADTQ_MAX_ERROR_BYTES + 1); /* one byte more: Swift sees it was cut */
        lua_replace(L, -2);
    }
    /* Near the memory limit, a traceback could fail and hide the error: skip it there. */
    yadtq_sandbox *sb = yadtq_sandbox_of(L);
    if (sb->limit - sb->used > 256 * 1024) luaL_traceback(L, L, lua_tostring(L, -1), 1);
    return 1;
}
/* Whether this thread takes the watchdog's signal: the threads of a pool (libdispatch's, Swift's
 * cooperative pool) block signals, and threads they start inherit that. */
static _Thread_local int yadtq_takes_stop_signal;

/* Shows the watchdog that an entry point of `sb` runs on this thread, and stops showing it. */
static void yadtq_begin_call(yadtq_sandbox *sb) {
    if (!yadtq_takes_stop_signal) {
        sigset_t signals;
        sigemptyset(&signals);
        sigaddset(&signals, YADTQ_STOP_SIGNAL);
        yadtq_takes_stop_signal = pthread_sigmask(SIG_UNBLOCK, &signals, NULL) == 0;
    }
    sb->thread = pthread_self();
    yadtq_calling = sb;
    __atomic_add_fetch(&sb->call_serial, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&sb->in_call, 1, __ATOMIC_RELEASE);
}
static void yadtq_end_call(yadtq_sandbox *sb, yadtq_sandbox *outer) {
    __atomic_store_n(&sb->in_call, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&sb->no_jump, 0, __ATOMIC_RELAXED); /* after a jump out of the allocator */
    yadtq_calling = outer;
}

static int yadtq_protected(lua_State *L, lua_CFunction body, void *arg, int nresults) {
    yadtq_sandbox *sb = yadtq_sandbox_of(L); /* the state's memory stays allocated until freed */
    if (sb->stopped) return YADTQ_STOPPED;
    if (!lua_checkstack(L, 3)) return LUA_ERRMEM;
    int handler = lua_gettop(L) + 1;
    lua_pushcfunction(L, yadtq_message_handler);
    lua_pushcfunction(L, body);
    lua_pushlightuserdata(L, arg);
    jmp_buf target;
    yadtq_sandbox *outer = yadtq_calling;
    if (setjmp(target) != 0) {
        yadtq_end_call(sb, outer);
        sb->stop_target = NULL;
        sb->running = NULL;
        return YADTQ_STOPPED;
    }
    sb->stop_target = &target;
    sb->refused_nsize = 0; /* a refusal while Swift read values (lua_checkstack) has been answered */
    yadtq_run_in(sb, L);
    sb->error_length = 0;
    yadtq_begin_call(sb);
    int status = lua_pcall(L, 1, nresults, handler);
    yadtq_end_call(sb, outer);
    sb->running = NULL;
    sb->stop_target = NULL;
    if (yadtq_refusal_pending(sb)) { /* e.g. `return pcall(table.concat, ...)`: see yadtq_alloc */
        sb->stopped = YADTQ_STOPPED_MEMORY;
        return YADTQ_STOPPED;
    }
    lua_rotate(L, handler, -1);
    lua_pop(L, 1);
    return status;
}

/* Creates a state with the sandbox's allocator and hook, and builds the sandbox. Returns NULL when
 * even that does not fit in the memory limit; on other failures the state is returned with the
 * message on its stack and `*status` set. */
lua_State *yadtq_newstate(yadtq_sandbox *sb, int *status) {
    lua_State *L = lua_newstate(yadtq_alloc, sb);
    *status = L == NULL ? LUA_ERRMEM : LUA_OK;
    if (L == NULL) return NULL;
    yadtq_watch(sb);
    lua_atpanic(L, yadtq_panic);
    lua_sethook(L, yadtq_hook, YADTQ_HOOK_MASK, YADTQ_HOOK_INSTRUCTIONS);
    *status = yadtq_protected(L, yadtq_open_sandbox_body, NULL, 0);
    return L;
}
static int yadtq_compile_body(lua_State *L) {
    yadtq_chunk *chunk = (yadtq_chunk *)lua_touserdata(L, 1);
    if (luaL_loadbufferx(L, chunk->source, chunk->length, chunk->chunkname, "t") != LUA_OK)
        return lua_error(L);
    chunk->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Compiles a plugin's source (text only) and keeps it; on error the message is on the stack. */
int yadtq_compile(lua_State *L, yadtq_chunk *chunk) {
    return yadtq_protected(L, yadtq_compile_body, chunk, 0);
}

static int yadtq_release_body(lua_State *L) {
    luaL_unref(L, LUA_REGISTRYINDEX, *(int *)lua_touserdata(L, 1));
    return 0;
}

int yadtq_release(lua_State *L, int ref) {
    return yadtq_protected(L, yadtq_release_body, &ref, 0);
}

/* Drops the environment of the last instance of chunk `ref` (held by the chunk's _ENV upvalue, which
 * that instance's functions share), so the task's globals are garbage before the next task counts
 * against the same memory limit. */
static void yadtq_drop_env(lua_State *L, int ref) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_pushnil(L);
    lua_setupvalue(L, -2, 1);
    lua_pop(L, 1);
}

/* Runs chunk `ref` in a fresh environment and leaves what it returned (the plugin) on the stack. */
static void yadtq_instantiate(lua_State *L, int ref) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_createtable(L, 0, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, yadtq_sandbox_of(L)->envmeta_ref);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
    lua_setupvalue(L, -2, 1); /* a main chunk's only upvalue is _ENV */
    lua_call(L, 0, 1);
}

/* The plugin at `idx` is a function, or a table with a `run` function: pushes that function. */
static void yadtq_push_entry(lua_State *L, int idx) {
    int t = lua_type(L, idx);
    if (t == LUA_TFUNCTION) {
        lua_pushvalue(L, idx);
        return;
    }
    if (t == LUA_TTABLE) {
        if (lua_getfield(L, idx, "run") == LUA_TFUNCTION) return;
        luaL_error(L, "the table the plugin returns has no 'run' function "
                      "(add run = function(args, task) ... end)");
    }
    luaL_error(L, "a plugin must return a function or a table with a 'run' function, not %s",
               luaL_typename(L, idx));
}
/* Seeds math.random from the system's entropy. The generator is one per state and its library is
 * shared, so without this a task could set (math.randomseed) or learn the numbers of the tasks that
 * run after it in the state, whatever their plugin. */
static void yadtq_reseed_random(lua_State *L) {
    lua_Integer seed[2];
    if (getentropy(seed, sizeof seed) != 0)
        luaL_error(L, "cannot seed math.random: getentropy failed (%s); the system gives no random bytes", strerror(errno));
    lua_getglobal(L, LUA_MATHLIBNAME); /* the real math library */
    lua_getfield(L, -1, "randomseed");
    lua_pushinteger(L, seed[0]);
    lua_pushinteger(L, seed[1]);
    lua_call(L, 2, 0);
    lua_pop(L, 1);
}

static int yadtq_run_body(lua_State *L) {
    yadtq_task *task = (yadtq_task *)lua_touserdata(L, 1);
    yadtq_reseed_random(L);
    yadtq_sandbox *sb = yadtq_sandbox_of(L);
    sb->longest_string = 0; /* the strings of earlier tasks are garbage */
    yadtq_run_in(sb, L);
    yadtq_instantiate(L, task->ref);                     /* 2: plugin */
    yadtq_push_entry(L, 2);                              /* 3: run */
    yadtq_cursor c = {(const unsigned char *)task->args, (const unsigned char *)task->args + task->args_length};
    yadtq_push_encoded(L, &c, 0);                        /* 4: args */
    lua_createtable(L, 0, 3);                            /* 5: task */
    lua_pushlstring(L, task->id, task->id_length);
    lua_setfield(L, 5, "id");
    lua_pushinteger(L, task->attempt);
    lua_setfield(L, 5, "attempt");
    lua_pushinteger(L, task->max_attempts);
    lua_setfield(L, 5, "max_attempts");
    lua_rawgeti(L, LUA_REGISTRYINDEX, yadtq_sandbox_of(L)->task_meta_ref);
    lua_setmetatable(L, 5);
    lua_call(L, 2, 1);
    yadtq_drop_env(L, task->ref); /* on errors, yadtq_finish does it */
    return 1;
}

/* Runs one task; leaves its result (or the error message) on the stack. */
int yadtq_run(lua_State *L, yadtq_task *task) {
    return yadtq_protected(L, yadtq_run_body, task, 1);
}

typedef struct yadtq_finish_request {
    int ref;
    int collect;
} yadtq_finish_request;

static int yadtq_finish_body(lua_State *L) {
    yadtq_finish_request *request = (yadtq_finish_request *)lua_touserdata(L, 1);
    yadtq_drop_env(L, request->ref);
    if (request->collect) lua_gc(L, LUA_GCCOLLECT);
    return 0;
}

/* After a call of chunk `ref` failed: drops its environment (see yadtq_drop_env); with `collect`,
 * also collects all garbage (after a task hit a limit). */
int yadtq_finish(lua_State *L, int ref, int collect) {
    yadtq_finish_request request = {ref, collect};
    return yadtq_protected(L, yadtq_finish_body, &request, 0);
}

/* Metadata of a plugin, read by running its chunk once without running a task. */
static void yadtq_check_field(lua_State *L, int idx, const char *name, int type, const char *what) {
    int t = lua_getfield(L, idx, name);
    if (t != LUA_TNIL && t != type)
        luaL_error(L, "'%s' must be %s, not %s", name, what, luaL_typename(L, -1));
}

static int yadtq_describe_body(lua_State *L) {
    int ref = *(int *)lua_touserdata(L, 1);
    yadtq_instantiate(L, ref); /* 2 */
    yadtq_push_entry(L, 2);
    lua_settop(L, 2);
    if (lua_type(L, 2) != LUA_TTABLE) {
        yadtq_drop_env(L, ref);
        lua_settop(L, 0);
        lua_settop(L, 7);
        return 7;
    }
    yadtq_check_field(L, 2, "description", LUA_TSTRING, "a string");
    yadtq_check_field(L, 2, "timeout", LUA_TNUMBER, "a number of seconds");
    if (lua_type(L, -1) == LUA_TNUMBER && !(lua_tonumber(L, -1) > 0 && lua_tonumber(L, -1) < 1e9))
        luaL_error(L, "'timeout' must be a positive number of seconds");
    /* Its range is checked by the host, against the one a task's max_attempts is read with: LuaState.swift. */
    yadtq_check_field(L, 2, "max_attempts", LUA_TNUMBER, "an integer");
    yadtq_check_field(L, 2, "args", LUA_TSTRING, "a string describing the arguments");
    /* The schedule's texts are read (and checked) by the host: PluginSchedule.swift. */
    yadtq_check_field(L, 2, "every", LUA_TSTRING, "a duration string such as \"30s\"");
    yadtq_check_field(L, 2, "cron", LUA_TSTRING, "a cron expression string such as \"*/5 * * * *\"");
    yadtq_check_field(L, 2, "schedule_args", LUA_TTABLE, "a list of the arguments of each scheduled task");
    yadtq_drop_env(L, ref);
    return 7; /* description, timeout, max_attempts, args, every, cron, schedule_args */
}

/* Leaves description, timeout, max_attempts, args, every, cron and schedule_args (each possibly
 * nil) on the stack. */
int yadtq_describe(lua_State *L, int ref) {
    return yadtq_protected(L, yadtq_describe_body, &ref, 7);
}
