#ifndef YADTQ_CLUA_SHIM_H
#define YADTQ_CLUA_SHIM_H
/* Lua 5.4's C API for Swift. The sandbox built on it is the CLuaSandbox target. */
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* Lua's function-like macros, re-declared as functions so Swift can call them. */
#undef lua_pop
static inline void lua_pop(lua_State *L, int n) { lua_settop(L, -(n)-1); }

#endif
