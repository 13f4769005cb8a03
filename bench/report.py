#!/usr/bin/env python3
"""Renders the results that bench/http.sh collected: a table with the ratios to the bare warp
hello-world, the login row apart, start-up and memory, and the targets from the issue.

Usage: report.py RESULTS [JSON_OUT]

RESULTS has one record a line, `key=value` tokens separated by spaces:
  kind=run name=... label=... conns=N requests=N duration_us=N p50_us=N p90_us=N p99_us=N
      max_us=N status_errors=N socket_errors=N
  kind=info key=value ...        (ready_ms, restart_ready_ms, idle_rss_kb, ...)
Exits 1 when a target is missed and STRICT=1 is in the environment.
"""

import json
import os
import sys

# The targets of the issue, for a release build.
READ_RATIO_MIN = 0.40  # authenticated reads, as a share of the hello-world rate
JOINS_MIN = 1000.0  # joins per second
P99_MAX_MS = 20.0  # at 64 concurrent clients
P99_CLIENTS = 64
READY_MAX_MS = 500.0
IDLE_RSS_MAX_MIB = 60.0


def parse(path):
    runs, info = {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
            kind = fields.pop("kind", "")
            if kind == "run":
                run = {k: (v if k in ("name", "label") else int(float(v))) for k, v in fields.items()}
                run["label"] = run["label"].replace("_", " ")
                secs = run["duration_us"] / 1e6
                run["rps"] = run["requests"] / secs if secs > 0 else 0.0
                run["errors"] = run["status_errors"] + run["socket_errors"]
                runs[run["name"]] = run
            elif kind == "info":
                info.update({k: float(v) for k, v in fields.items()})
    return runs, info


def ms(us):
    return us / 1000.0


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    runs, info = parse(sys.argv[1])
    json_out = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    hello = runs.get("hello")
    hello_rps = hello["rps"] if hello and hello["rps"] > 0 else None

    def ratio(run):
        return run["rps"] / hello_rps if hello_rps else None

    header = f"{'scenario':<34} {'conns':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'vs hello':>9} {'errors':>7}"

    def row(run, with_ratio=True):
        r = ratio(run) if with_ratio else None
        rtxt = f"{r * 100:8.1f}%" if r is not None else f"{'-':>9}"
        return (
            f"{run['label']:<34} {int(run['conns']):>5} {run['rps']:>10,.0f} {ms(run['p50_us']):>8.2f} "
            f"{ms(run['p99_us']):>8.2f} {ms(run['max_us']):>8.1f} {rtxt} {run['errors']:>7}"
        )

    print()
    print(header)
    print("-" * len(header))
    for name in ("hello", "reads", "joins"):
        if name in runs:
            print(row(runs[name]))
    if "login" in runs:
        print()
        print("login is deliberately slow (argon2) and reported apart, at lower concurrency:")
        print(row(runs["login"], with_ratio=False))
    print()
    if "ready_ms" in info:
        line = f"start-up: ready in {info['ready_ms']:.0f} ms (fresh data dir)"
        if "restart_ready_ms" in info:
            line += f", {info['restart_ready_ms']:.0f} ms (restart on the same data)"
        if "stop_ms" in info:
            line += f"; SIGTERM to exit {info['stop_ms']:.0f} ms"
        print(line)
    if "idle_rss_kb" in info:
        line = f"memory: idle RSS {info['idle_rss_kb'] / 1024:.1f} MiB after start-up"
        if "restart_idle_rss_kb" in info:
            line += f" ({info['restart_idle_rss_kb'] / 1024:.1f} MiB after the restart)"
        if "peak_rss_kb" in info:
            line += f", peak {info['peak_rss_kb'] / 1024:.1f} MiB under load"
        print(line)

    # The targets.
    checks = []

    def check(what, ok, value):
        checks.append({"target": what, "ok": bool(ok), "value": value})

    def clean(run):
        return "" if run["errors"] == 0 else f" ({run['errors']} errors: not a valid measurement)"

    if "reads" in runs:
        r = ratio(runs["reads"])
        check(
            f"authenticated reads >= {READ_RATIO_MIN * 100:.0f}% of hello-world",
            r is not None and r >= READ_RATIO_MIN and runs["reads"]["errors"] == 0,
            (f"{r * 100:.1f}%" if r is not None else "no hello-world rate") + clean(runs["reads"]),
        )
    if "joins" in runs:
        j = runs["joins"]
        check(f"joins >= {JOINS_MIN:,.0f}/s", j["rps"] >= JOINS_MIN and j["errors"] == 0, f"{j['rps']:,.0f}/s" + clean(j))
    for name, what in (("reads", "reads"), ("joins", "joins")):
        if name in runs:
            run = runs[name]
            at = int(run["conns"])
            note = "" if at == P99_CLIENTS else f" (measured at {at} clients, the target is for {P99_CLIENTS})"
            check(
                f"p99 < {P99_MAX_MS:.0f} ms at {P99_CLIENTS} clients ({what})",
                ms(run["p99_us"]) < P99_MAX_MS and run["errors"] == 0,
                f"{ms(run['p99_us']):.2f} ms{note}" + clean(run),
            )
    ready = [info[k] for k in ("ready_ms", "restart_ready_ms") if k in info]
    if ready:
        check(f"`meet serve` ready < {READY_MAX_MS:.0f} ms", max(ready) < READY_MAX_MS, f"{max(ready):.0f} ms")
    rss = [info[k] / 1024 for k in ("idle_rss_kb", "restart_idle_rss_kb") if k in info]
    if rss:
        check(f"idle RSS < {IDLE_RSS_MAX_MIB:.0f} MB", max(rss) < IDLE_RSS_MAX_MIB, f"{max(rss):.1f} MiB")

    if checks:
        print()
        print("targets (release build):")
        for c in checks:
            print(f"  [{'PASS' if c['ok'] else 'MISS'}] {c['target']:<44} {c['value']}")
    missed = [c for c in checks if not c["ok"]]

    if json_out:
        doc = {
            "runs": runs,
            "hello_ratio": {k: ratio(v) for k, v in runs.items() if k != "login"},
            "info": info,
            "targets": checks,
        }
        with open(json_out, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print(f"\nresults written to {json_out}")

    if missed and os.environ.get("STRICT") == "1":
        sys.exit(1)


if __name__ == "__main__":
    main()
