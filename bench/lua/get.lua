-- An authenticated GET on the URL given to wrk (e.g. /api/host/meetings).
-- Env: TOKEN (a bearer token).
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")

wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. require_env("TOKEN")
