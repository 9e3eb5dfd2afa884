#ifndef YADTQ_LUA_SANDBOX_H
#define YADTQ_LUA_SANDBOX_H
/*
 * The C half of the YADTQ plugin sandbox (Swift half: Sources/YADTQCore/Plugins); the code is in
 * sandbox.c. This header holds what Swift needs: the per-state bookkeeping, the host-function
 * interface and the entry points.
 *
 * Rule that shapes it: a Lua error is a longjmp, and a longjmp must never cross a Swift frame.
 * So every Lua API call that can raise (anything that allocates, calls a metamethod or runs Lua
 * code) happens in C inside a `lua_pcall` that Swift starts through one of the `yadtq_*` entry
 * points below. Swift itself only calls functions that cannot raise (lua_type, lua_tolstring on
 * strings, lua_next on tables it does not modify, lua_settop, lua_checkstack, ...). Swift
 * functions that Lua calls (task.log, json.encode, json.decode) are reached through the
 * trampoline: they read their arguments without raising and describe their result in a
 * `yadtq_reply`, which the C trampoline pushes, or raises as an error with `lua_error`, after the
 * Swift frame has returned.
 *
 * The other longjmp, yadtq_stop (a limit was hit), follows the same rule: it only jumps from C code
 * that Lua runs back to the C entry point, and the trampoline disarms it while a Swift function runs.
 * So does the watchdog's signal handler, which stops a call inside a step no check reaches.
 */
#include <lua.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

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

/* Why a state was stopped: the limit it hit, or a stop asked for from outside (a cancelled task). */
enum {
    YADTQ_RUNNING = 0,
    YADTQ_STOPPED_TIME = 1,
    YADTQ_STOPPED_MEMORY = 2,
    YADTQ_STOPPED_CANCELLED = 3
};

/* What an entry point returns after the state was stopped (no Lua status has this value). */
enum { YADTQ_STOPPED = 100 };

typedef struct yadtq_sandbox {
    size_t used;           /* bytes currently allocated by the state (without block headers) */
    size_t limit;          /* growth past this is refused; refused twice in a row, the state is stopped */
    uint64_t deadline_ns;  /* CLOCK_MONOTONIC instant at which code is stopped; 0: no deadline. Set it
                            * with yadtq_set_deadline: the watchdog reads it from its own thread */
    int *stop_request;     /* a flag another thread raises (yadtq_request_stop) to stop the running
                            * code at its next check, as the deadline does; NULL: none. Honoured only
                            * while a deadline is set, i.e. while a task or a plugin's top level runs */
    yadtq_block *blocks;   /* every block the state holds */
    void *stop_target;     /* jmp_buf of the running entry point; NULL while Swift code runs */
    int stopped;           /* YADTQ_STOPPED_*: the state was abandoned and must only be freed */
    char stopped_at[512];  /* where Lua code was when the deadline stopped it (a short traceback) */
    const void *refused_ptr; /* the last growth request the allocator refused, see yadtq_alloc */
    size_t refused_osize;
    size_t refused_nsize;
    size_t grown;          /* bytes of growth since the allocator last looked at the clock */
    lua_State *running;    /* the thread (main or coroutine) whose code runs, while an entry point runs */
    size_t longest_string; /* bytes of the longest string made since the running task started */
    double progress;       /* last task.progress(fraction) of the running task */
    int has_progress;
    size_t error_length;   /* bytes of the error message the message handler made in the last protected
                            * call, before it cut it to 4 KiB + 1 (so Swift's note gives the length);
                            * 0 when no handler ran (a memory error) */
    int envmeta_ref;       /* registry refs, set by yadtq_open_sandbox */
    int task_meta_ref;
    yadtq_host_fn hosts[YADTQ_HOST_COUNT];
    void *host_context;    /* the Swift LuaState, unretained; read back by host functions */
    /* For the watchdog (see sandbox.c), which stops a call that no check reaches: */
    pthread_t thread;      /* the thread that runs the current entry point */
    int in_call;           /* an entry point runs (atomic: the watchdog reads it) */
    unsigned call_serial;  /* counts entry point calls (atomic) */
    int no_jump;           /* the allocator is updating the block list: a signal must not jump */
    int watched;           /* on the watchdog's list, from yadtq_newstate to yadtq_free_all */
    struct yadtq_sandbox *watch_prev, *watch_next;
    unsigned request_seen_serial; /* the watchdog's own: the call whose stop request it saw first at */
    uint64_t request_seen_ns;
} yadtq_sandbox;


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


/* Runs `body(L)` with `arg` as its only argument in protected mode; leaves `nresults` results or
 * the error message (with traceback) on the stack. Never raises. Returns YADTQ_STOPPED, with
 * `stopped` saying why, when a limit stopped the state: then the state may only be freed
 * (yadtq_free_all), and every later call returns YADTQ_STOPPED at once. */

typedef struct yadtq_chunk {
    const char *source;
    size_t length;
    const char *chunkname; /* "@add.lua": messages then read "add.lua:3: ..." */
    int ref;               /* out: registry ref of the compiled chunk */
} yadtq_chunk;


typedef struct yadtq_task {
    int ref;
    const char *args;      /* encoded array of arguments */
    size_t args_length;
    const char *id;
    size_t id_length;
    lua_Integer attempt;
    lua_Integer max_attempts;
} yadtq_task;

/* ---------------------------------------------------------------------------------------------- */
/* Entry points (see sandbox.c for what each does). */

yadtq_sandbox *yadtq_sandbox_of(lua_State *L);
uint64_t yadtq_now_ns(void);
/* Raise or lower a stop_request flag; safe from any thread while the state runs (atomic). */
void yadtq_request_stop(int *flag);
void yadtq_clear_stop(int *flag);
/* Why the running code must stop now (YADTQ_STOPPED_TIME or _CANCELLED), or YADTQ_RUNNING: for
 * Swift code that reads a state's values while its call's deadline runs (results, json.encode). */
int yadtq_stop_reason(const yadtq_sandbox *sb);
/* Sets (or, with 0, clears) the deadline of the calls that follow. */
void yadtq_set_deadline(yadtq_sandbox *sb, uint64_t deadline_ns);
/* Frees the state's blocks and takes the sandbox off the watchdog's list: call it last, also
 * after lua_close, before the sandbox's memory is reused. */
void yadtq_free_all(yadtq_sandbox *sb);
void yadtq_set_host(yadtq_sandbox *sb, int index, yadtq_host_fn fn);
lua_State *yadtq_newstate(yadtq_sandbox *sb, int *status);
int yadtq_compile(lua_State *L, yadtq_chunk *chunk);
int yadtq_release(lua_State *L, int ref);
int yadtq_run(lua_State *L, yadtq_task *task);
int yadtq_finish(lua_State *L, int ref, int collect);
int yadtq_describe(lua_State *L, int ref);

#endif
