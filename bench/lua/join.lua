-- POST /api/meetings/<MEETING_ID>/join with an empty JSON body. The caller is already in the
-- meeting after the first request, so every later one is an idempotent rejoin.
-- Env: TOKEN (a bearer token), MEETING_ID.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")

wrk.method = "POST"
wrk.path = "/api/meetings/" .. require_env("MEETING_ID") .. "/join"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. require_env("TOKEN")
