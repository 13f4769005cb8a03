-- GET on the URL given to wrk, no headers: the bare hello-world server.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")

wrk.method = "GET"
