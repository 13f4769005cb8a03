-- POST /api/auth/login with a JSON body (argon2 verification on every request).
-- Env: LOGIN_USERNAME, LOGIN_PASSWORD (not USERNAME: many shells already set that one).
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")

wrk.method = "POST"
wrk.path = "/api/auth/login"
wrk.body = '{"username":' .. json_string(require_env("LOGIN_USERNAME"))
  .. ',"password":' .. json_string(require_env("LOGIN_PASSWORD")) .. "}"
wrk.headers["Content-Type"] = "application/json"
