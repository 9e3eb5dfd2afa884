#ifndef YADTQ_CLUA_SHIM_H
#define YADTQ_CLUA_SHIM_H
/*
 * The C half of the YADTQ plugin sandbox (Swift half: Sources/YADTQCore/Plugins).
 *
 * Rule that shapes this file: a Lua error is a longjmp, and a longjmp must never cross a Swift frame.
 * So every Lua API call that can raise (anything that allocates, calls a metamethod or runs Lua code)
 * happens in C inside a `lua_pcall` that Swift starts through one of the `yadtq_*` entry points below.
 * Swift itself only calls functions that cannot raise (lua_type, lua_tolstring on strings, lua_next on
 * tables it does not modify, lua_settop, lua_checkstack, ...). Swift functions that Lua calls (task.log,
 * json.encode, json.decode) are reached through `yadtq_trampoline`: they read their arguments without
 * raising and describe their result in a `yadtq_reply`, which the C trampoline pushes, or raises as
 * an error with `lua_error`, after the Swift frame has returned.
 *
 * Everything is `static inline` because a system library target has no C sources of its own. Keep
 * state out of static variables: Swift may emit a copy of these functions into several object files.
 */
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------------------------------------- */
/* Lua's function-like macros, re-declared as functions so Swift can call them.                    */

#undef lua_pop
static inline void lua_pop(lua_State *L, int n) { lua_settop(L, -(n)-1); }

/* ---------------------------------------------------------------------------------------------- */
/* Per-state bookkeeping: the allocator's and the hook's user data.                                */

/* Indices of the Swift host functions in `yadtq_sandbox.hosts`. */
enum {
    YADTQ_HOST_LOG = 0,         /* task.log(...), print(...) */
    YADTQ_HOST_JSON_ENCODE = 1, /* json.encode(value) */
    YADTQ_HOST_JSON_DECODE = 2, /* json.decode(text) */
    YADTQ_HOST_COUNT = 3
};

/* What a Swift host function asks the trampoline to do once it has returned. */
enum {
    YADTQ_REPLY_NOTHING = 0, /* return no value */
    YADTQ_REPLY_STRING = 1,  /* return `data[0..<length]` as a Lua string */
    YADTQ_REPLY_VALUE = 2,   /* return the value encoded in `data` (see yadtq_push_encoded) */
    YADTQ_REPLY_ERROR = 3    /* raise `data[0..<length]` as an error, prefixed with the caller's position */
};

typedef struct yadtq_reply {
    const char *data; /* owned by the Swift side, valid until its next host call */
    size_t length;
} yadtq_reply;

/* A Swift function callable from Lua. It must not call any Lua function that can raise. */
typedef int (*yadtq_host_fn)(lua_State *L, yadtq_reply *reply);

/* Header of every block the allocator hands to Lua: all blocks of a state form a list, so that a
 * stopped state (see yadtq_stop) can be freed without running any of Lua's code. 16 bytes, which
 * keeps malloc's alignment for the block that follows. */
typedef struct yadtq_block {
    struct yadtq_block *prev;
    struct yadtq_block *next;
} yadtq_block;

/* Why a state was stopped: the limit it hit. */
enum {
    YADTQ_RUNNING = 0,
    YADTQ_STOPPED_TIME = 1,
    YADTQ_STOPPED_MEMORY = 2
};

/* What an entry point returns after the state was stopped (no Lua status has this value). */
enum { YADTQ_STOPPED = 100 };

typedef struct yadtq_sandbox {
    size_t used;           /* bytes currently allocated by the state (without block headers) */
    size_t limit;          /* growth past this is refused; refused twice in a row, the state is stopped */
    uint64_t deadline_ns;  /* CLOCK_MONOTONIC instant at which code is stopped; 0: no deadline */
    yadtq_block *blocks;   /* every block the state holds */
    void *stop_target;     /* jmp_buf of the running entry point; NULL while Swift code runs */
    int stopped;           /* YADTQ_STOPPED_*: the state was abandoned and must only be freed */
    char stopped_at[512];  /* where Lua code was when the deadline stopped it (a short traceback) */
    const void *refused_ptr; /* the last growth request the allocator refused, see yadtq_alloc */
    size_t refused_osize;
    size_t refused_nsize;
    double progress;       /* last task.progress(fraction) of the running task */
    int has_progress;
    int envmeta_ref;       /* registry refs, set by yadtq_open_sandbox */
    int task_meta_ref;
    yadtq_host_fn hosts[YADTQ_HOST_COUNT];
    void *host_context;    /* the Swift LuaState, unretained; read back by host functions */
} yadtq_sandbox;

static inline yadtq_sandbox *yadtq_sandbox_of(lua_State *L) {
    void *ud = NULL;
    (void)lua_getallocf(L, &ud);
    return (yadtq_sandbox *)ud;
}

static inline uint64_t yadtq_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The same clock, read at a few ms resolution for a fraction of the cost: the hook reads it at every
 * function call. */
static inline uint64_t yadtq_coarse_now_ns(void) {
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
static inline void yadtq_stop(yadtq_sandbox *sb, int why) {
    if (sb->stop_target == NULL) return;
    sb->stopped = why;
    longjmp(*(jmp_buf *)sb->stop_target, 1);
}

static inline void yadtq_unlink(yadtq_sandbox *sb, yadtq_block *b) {
    if (b->prev) b->prev->next = b->next; else sb->blocks = b->next;
    if (b->next) b->next->prev = b->prev;
}

/* The allocator: counts bytes and refuses growth past the limit. Lua answers a refusal with an
 * emergency full collection and asks again for the same block, so garbage never causes a failure;
 * when that second request is refused too, the task has hit the limit and the state is stopped
 * rather than letting Lua raise "not enough memory", which Lua code could catch or replace. */
static inline void *yadtq_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    yadtq_sandbox *sb = (yadtq_sandbox *)ud;
    size_t old = ptr ? osize : 0; /* for a new block, osize is a type tag, not a size */
    yadtq_block *block = ptr ? (yadtq_block *)ptr - 1 : NULL;
    if (nsize == 0) {
        if (block) {
            yadtq_unlink(sb, block);
            free(block);
            sb->used -= old;
        }
        return NULL;
    }
    if (nsize > old && nsize - old > sb->limit - sb->used) {
        if (sb->refused_nsize == nsize && sb->refused_ptr == ptr && sb->refused_osize == osize)
            yadtq_stop(sb, YADTQ_STOPPED_MEMORY);
        sb->refused_ptr = ptr;
        sb->refused_osize = osize;
        sb->refused_nsize = nsize;
        return NULL;
    }
    if (nsize > old) sb->refused_nsize = 0; /* only frees and shrinks happen between the two requests */
    if (nsize > SIZE_MAX - sizeof(yadtq_block)) return NULL;
    yadtq_block *moved = (yadtq_block *)realloc(block, sizeof(yadtq_block) + nsize);
    if (moved == NULL) return NULL;
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
    return moved + 1;
}

/* Frees every block of a state, which must not be used afterwards: the way to dispose of a stopped
 * state (lua_close would run code of the state). */
static inline void yadtq_free_all(yadtq_sandbox *sb) {
    while (sb->blocks) {
        yadtq_block *b = sb->blocks;
        sb->blocks = b->next;
        free(b);
    }
    sb->used = 0;
}

static inline int yadtq_panic(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "yadtq: unprotected Lua error (a bug in the plugin runtime): %s\n", msg ? msg : "?");
    return 0; /* Lua aborts the process */
}

static inline void yadtq_sleep_until(uint64_t when_ns) {
    struct timespec ts = {(time_t)(when_ns / 1000000000u), (long)(when_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

static inline void yadtq_set_host(yadtq_sandbox *sb, int index, yadtq_host_fn fn) {
    if (index >= 0 && index < YADTQ_HOST_COUNT) sb->hosts[index] = fn;
}

/* ---------------------------------------------------------------------------------------------- */
/* Time and memory limits as seen from inside Lua.                                                 */

/* Notes where Lua code is (a short traceback of Lua functions), for the timeout's report. Reads the
 * stack without allocating: lua_getinfo with "Sl" writes into the lua_Debug only. */
static inline void yadtq_note_position(lua_State *L, yadtq_sandbox *sb) {
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

/* Stops the state once the deadline has passed; called by the hook and by C functions that may run
 * long (pattern matching, task.sleep, ...). */
static inline void yadtq_check_deadline(lua_State *L) {
    yadtq_sandbox *sb = yadtq_sandbox_of(L);
    if (sb->deadline_ns != 0 && yadtq_coarse_now_ns() >= sb->deadline_ns) {
        yadtq_note_position(L, sb);
        yadtq_stop(sb, YADTQ_STOPPED_TIME);
    }
}

/* The hook runs at every function call (Lua or C: a C library call may take long, and many of them
 * can run between two count events) and every YADTQ_HOOK_INSTRUCTIONS VM instructions (a single
 * instruction may compare or concatenate long strings). It never raises a Lua error: Lua disables
 * hooks while a hook runs and while an error raised from one unwinds, so a message handler or a
 * __close handler would then run unchecked. It stops the state instead (yadtq_stop). */
#define YADTQ_HOOK_INSTRUCTIONS 100
static inline void yadtq_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    yadtq_check_deadline(L);
}

/* ---------------------------------------------------------------------------------------------- */
/* Values that Swift hands to Lua (task arguments, json.decode results) travel as a flat buffer that
 * C turns into Lua values, so that the allocations happen in C. Layout, native byte order:
 *   'n' null (json.null) | 'f' false | 't' true | 'i' int64 | 'd' double
 *   's' u64 length, bytes | 'a' u64 count, count values
 *   'o' u64 count, count times (key as u64 length and bytes, without tag; value) */

typedef struct yadtq_cursor {
    const unsigned char *at;
    const unsigned char *end;
} yadtq_cursor;

#define YADTQ_MAX_DEPTH 512 /* = JSONValue.maximumNestingDepth, so every parsed document converts */

static inline uint64_t yadtq_read_u64(lua_State *L, yadtq_cursor *c) {
    uint64_t v;
    if ((size_t)(c->end - c->at) < sizeof v) luaL_error(L, "corrupt value buffer (plugin runtime bug)");
    memcpy(&v, c->at, sizeof v);
    c->at += sizeof v;
    return v;
}

static inline void yadtq_push_encoded_string(lua_State *L, yadtq_cursor *c) {
    uint64_t len = yadtq_read_u64(L, c);
    if ((uint64_t)(c->end - c->at) < len) luaL_error(L, "corrupt value buffer (plugin runtime bug)");
    lua_pushlstring(L, (const char *)c->at, (size_t)len);
    c->at += len;
}

static inline void yadtq_push_encoded(lua_State *L, yadtq_cursor *c, int depth) {
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

static inline int yadtq_trampoline(lua_State *L) {
    yadtq_sandbox *sb = yadtq_sandbox_of(L);
    yadtq_host_fn fn = sb->hosts[lua_tointeger(L, lua_upvalueindex(1))];
    yadtq_reply reply = {NULL, 0};
    /* No stop may jump over the Swift frame: while it runs, the allocator only refuses. */
    void *stop_target = sb->stop_target;
    sb->stop_target = NULL;
    int kind = fn(L, &reply);
    sb->stop_target = stop_target;
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
/* The sandbox: the globals a plugin sees.                                                         */

/* __newindex of the read-only library proxies. Upvalue 1: the library's name. */
static inline int yadtq_readonly_newindex(lua_State *L) {
    return luaL_error(L, "attempt to modify read-only library '%s' (plugins share it; keep your own "
                         "values in locals or globals)", lua_tostring(L, lua_upvalueindex(1)));
}

/* The iterator that __pairs of a read-only proxy returns: next() over the real table, which stays
 * hidden (returning `next, real` would hand the real table out). Upvalue 1: the real table. */
static inline int yadtq_readonly_next(lua_State *L) {
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1))) return 2;
    lua_pushnil(L);
    return 1;
}

/* __pairs of the read-only proxies, so pairs(math) lists the library. Upvalue 1: the iterator. */
static inline int yadtq_readonly_pairs(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* Replaces the table on top of the stack with a read-only proxy of it, stored as base[name]. */
static inline void yadtq_set_readonly(lua_State *L, int base, const char *name) {
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

/* load(chunk [, chunkname [, mode [, env]]]): text only; without `env`, the chunk gets a fresh
 * sandbox environment. Upvalue 1: the original load. */
static inline int yadtq_safe_load(lua_State *L) {
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
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 4, LUA_MULTRET);
    return lua_gettop(L);
}

/* setmetatable without __gc: finalizers run outside any task's time limit (hooks are off during
 * garbage collection), possibly while the state is being closed. Upvalue 1: the original. */
static inline int yadtq_safe_setmetatable(lua_State *L) {
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

/* string.rep that fails as any allocation past the memory limit does, before Lua's own
 * "resulting string too large" (which only starts at 2 GiB). Upvalue 1: the original. */
static inline int yadtq_safe_rep(lua_State *L) {
    size_t length = 0, separator = 0;
    luaL_checklstring(L, 1, &length);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &separator);
    yadtq_sandbox *sb = yadtq_sandbox_of(L);
    double needed = n > 0 ? (double)length * (double)n + (double)separator * (double)(n - 1) : 0;
    if (needed > (double)(sb->limit - sb->used)) lua_gc(L, LUA_GCCOLLECT, 0); /* as the allocator would */
    if (needed > (double)(sb->limit - sb->used)) yadtq_stop(sb, YADTQ_STOPPED_MEMORY);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* task.progress(fraction) */
static inline int yadtq_task_progress(lua_State *L) {
    lua_Number f = luaL_checknumber(L, 1);
    if (!(f >= 0 && f <= 1))
        return luaL_error(L, "task.progress: fraction must be between 0 and 1, got %f", f);
    yadtq_sandbox *sb = yadtq_sandbox_of(L);
    sb->progress = f;
    sb->has_progress = 1;
    return 0;
}

/* task.sleep(seconds): sleeps the worker thread, but never past the task's deadline. */
static inline int yadtq_task_sleep(lua_State *L) {
    lua_Number s = luaL_checknumber(L, 1);
    if (!(s >= 0)) return luaL_error(L, "task.sleep: seconds must be a non-negative number");
    yadtq_sandbox *sb = yadtq_sandbox_of(L);
    uint64_t now = yadtq_now_ns();
    uint64_t span = s >= 1e9 ? UINT64_MAX / 2 : (uint64_t)(s * 1e9);
    uint64_t wake = now + span;
    if (sb->deadline_ns != 0 && wake >= sb->deadline_ns) {
        yadtq_sleep_until(sb->deadline_ns);
        yadtq_check_deadline(L);
    }
    yadtq_sleep_until(wake);
    return 0;
}

static inline void yadtq_push_host(lua_State *L, int host) {
    lua_pushinteger(L, host);
    lua_pushcclosure(L, yadtq_trampoline, 1);
}

/* target[name] = `wrapper` closing over source[name] (the original function). */
static inline void yadtq_wrap(lua_State *L, int target, int source, const char *name, lua_CFunction wrapper) {
    lua_getfield(L, source, name);
    lua_pushcclosure(L, wrapper, 1);
    lua_setfield(L, target, name);
}

static inline void yadtq_copy_fields(lua_State *L, int target, int source, const char *const *names) {
    for (; *names; names++) {
        lua_getfield(L, source, *names);
        lua_setfield(L, target, *names);
    }
}

/* Protected part of yadtq_newstate: builds the sandbox. Keeps, in the registry:
 *   envmeta = { __index = base, __metatable = false }  -- metatable of every plugin environment
 *   task_meta = { __index = { log, progress, sleep }, __metatable = false }  -- of `task`
 * The real global table keeps the full standard libraries; no plugin can reach it. */
static inline int yadtq_open_sandbox_body(lua_State *L) {
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
     * strings' metatable cannot be fetched or changed. string.rep respects the memory limit. */
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    yadtq_wrap(L, 1, 1, "rep", yadtq_safe_rep);
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

/* Message handler of every protected call: makes any error object readable, adds a traceback. */
static inline int yadtq_message_handler(lua_State *L) {
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
    /* Near the memory limit, a traceback could fail and hide the error: skip it there. */
    yadtq_sandbox *sb = yadtq_sandbox_of(L);
    if (sb->limit - sb->used > 256 * 1024) luaL_traceback(L, L, lua_tostring(L, -1), 1);
    return 1;
}

/* Runs `body(L)` with `arg` as its only argument in protected mode; leaves `nresults` results or
 * the error message (with traceback) on the stack. Never raises. Returns YADTQ_STOPPED, with
 * `stopped` saying why, when a limit stopped the state: then the state may only be freed
 * (yadtq_free_all), and every later call returns YADTQ_STOPPED at once. */
static inline int yadtq_protected(lua_State *L, lua_CFunction body, void *arg, int nresults) {
    yadtq_sandbox *sb = yadtq_sandbox_of(L); /* the state's memory stays allocated until freed */
    if (sb->stopped) return YADTQ_STOPPED;
    if (!lua_checkstack(L, 3)) return LUA_ERRMEM;
    int handler = lua_gettop(L) + 1;
    lua_pushcfunction(L, yadtq_message_handler);
    lua_pushcfunction(L, body);
    lua_pushlightuserdata(L, arg);
    jmp_buf target;
    if (setjmp(target) != 0) {
        sb->stop_target = NULL;
        return YADTQ_STOPPED;
    }
    sb->stop_target = &target;
    int status = lua_pcall(L, 1, nresults, handler);
    sb->stop_target = NULL;
    lua_rotate(L, handler, -1);
    lua_pop(L, 1);
    return status;
}

/* Creates a state with the sandbox's allocator and hook, and builds the sandbox. Returns NULL when
 * even that does not fit in the memory limit; on other failures the state is returned with the
 * message on its stack and `*status` set. */
static inline lua_State *yadtq_newstate(yadtq_sandbox *sb, int *status) {
    lua_State *L = lua_newstate(yadtq_alloc, sb);
    *status = L == NULL ? LUA_ERRMEM : LUA_OK;
    if (L == NULL) return NULL;
    lua_atpanic(L, yadtq_panic);
    lua_sethook(L, yadtq_hook, LUA_MASKCALL | LUA_MASKCOUNT, YADTQ_HOOK_INSTRUCTIONS);
    *status = yadtq_protected(L, yadtq_open_sandbox_body, NULL, 0);
    return L;
}

typedef struct yadtq_chunk {
    const char *source;
    size_t length;
    const char *chunkname; /* "@add.lua": messages then read "add.lua:3: ..." */
    int ref;               /* out: registry ref of the compiled chunk */
} yadtq_chunk;

static inline int yadtq_compile_body(lua_State *L) {
    yadtq_chunk *chunk = (yadtq_chunk *)lua_touserdata(L, 1);
    if (luaL_loadbufferx(L, chunk->source, chunk->length, chunk->chunkname, "t") != LUA_OK)
        return lua_error(L);
    chunk->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Compiles a plugin's source (text only) and keeps it; on error the message is on the stack. */
static inline int yadtq_compile(lua_State *L, yadtq_chunk *chunk) {
    return yadtq_protected(L, yadtq_compile_body, chunk, 0);
}

static inline int yadtq_release_body(lua_State *L) {
    luaL_unref(L, LUA_REGISTRYINDEX, *(int *)lua_touserdata(L, 1));
    return 0;
}

static inline int yadtq_release(lua_State *L, int ref) {
    return yadtq_protected(L, yadtq_release_body, &ref, 0);
}

/* Drops the environment of the last instance of chunk `ref` (held by the chunk's _ENV upvalue, which
 * that instance's functions share), so the task's globals are garbage before the next task counts
 * against the same memory limit. */
static inline void yadtq_drop_env(lua_State *L, int ref) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_pushnil(L);
    lua_setupvalue(L, -2, 1);
    lua_pop(L, 1);
}

/* Runs chunk `ref` in a fresh environment and leaves what it returned (the plugin) on the stack. */
static inline void yadtq_instantiate(lua_State *L, int ref) {
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
static inline void yadtq_push_entry(lua_State *L, int idx) {
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

typedef struct yadtq_task {
    int ref;
    const char *args;      /* encoded array of arguments */
    size_t args_length;
    const char *id;
    size_t id_length;
    lua_Integer attempt;
    lua_Integer max_attempts;
} yadtq_task;

static inline int yadtq_run_body(lua_State *L) {
    yadtq_task *task = (yadtq_task *)lua_touserdata(L, 1);
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
static inline int yadtq_run(lua_State *L, yadtq_task *task) {
    return yadtq_protected(L, yadtq_run_body, task, 1);
}

typedef struct yadtq_finish_request {
    int ref;
    int collect;
} yadtq_finish_request;

static inline int yadtq_finish_body(lua_State *L) {
    yadtq_finish_request *request = (yadtq_finish_request *)lua_touserdata(L, 1);
    yadtq_drop_env(L, request->ref);
    if (request->collect) lua_gc(L, LUA_GCCOLLECT);
    return 0;
}

/* After a call of chunk `ref` failed: drops its environment (see yadtq_drop_env); with `collect`,
 * also collects all garbage (after a task hit a limit). */
static inline int yadtq_finish(lua_State *L, int ref, int collect) {
    yadtq_finish_request request = {ref, collect};
    return yadtq_protected(L, yadtq_finish_body, &request, 0);
}

/* Metadata of a plugin, read by running its chunk once without running a task. */
static inline void yadtq_check_field(lua_State *L, int idx, const char *name, int type, const char *what) {
    int t = lua_getfield(L, idx, name);
    if (t != LUA_TNIL && t != type)
        luaL_error(L, "'%s' must be %s, not %s", name, what, luaL_typename(L, -1));
}

static inline int yadtq_describe_body(lua_State *L) {
    int ref = *(int *)lua_touserdata(L, 1);
    yadtq_instantiate(L, ref); /* 2 */
    yadtq_push_entry(L, 2);
    lua_settop(L, 2);
    if (lua_type(L, 2) != LUA_TTABLE) {
        yadtq_drop_env(L, ref);
        lua_settop(L, 0);
        lua_settop(L, 4);
        return 4;
    }
    yadtq_check_field(L, 2, "description", LUA_TSTRING, "a string");
    yadtq_check_field(L, 2, "timeout", LUA_TNUMBER, "a number of seconds");
    if (lua_type(L, -1) == LUA_TNUMBER && !(lua_tonumber(L, -1) > 0 && lua_tonumber(L, -1) < 1e9))
        luaL_error(L, "'timeout' must be a positive number of seconds");
    yadtq_check_field(L, 2, "max_attempts", LUA_TNUMBER, "a positive integer");
    if (lua_type(L, -1) == LUA_TNUMBER && !(lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1))
        luaL_error(L, "'max_attempts' must be a positive integer");
    yadtq_check_field(L, 2, "args", LUA_TSTRING, "a string describing the arguments");
    yadtq_drop_env(L, ref);
    return 4; /* description, timeout, max_attempts, args */
}

/* Leaves description, timeout, max_attempts and args (each possibly nil) on the stack. */
static inline int yadtq_describe(lua_State *L, int ref) {
    return yadtq_protected(L, yadtq_describe_body, &ref, 4);
}

#endif
