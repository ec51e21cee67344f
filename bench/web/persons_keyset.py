#!/usr/bin/env python3
r"""Issue 23: `GET /persons` by keyset cursor (`after`) against `offset`, at depths 0, 50,000 and 500,000 of a people
list, on SQLite and PostgreSQL, through the real `photo-sorter serve` in its default configuration.

    ml-service/.venv/bin/python bench/web/persons_keyset.py [--persons 600000] [--requests 200] \
        [--databases sqlite postgres] [--binary .build/release/photo-sorter] [--workdir /tmp/persons-keyset] \
        [--json bench/out/persons-keyset.json] [--md /tmp/persons-keyset.md]

1. Per database, `bench/scale/generate_library.py` writes a synthetic analysed library of `--persons` persons
   (as many photos and faces, plus 10 %, 128-d vectors: the list never reads them; Zipf-like person sizes, so most
   persons have one or two photos, as in a real library) into a fresh SQLite file or PostgreSQL database.
2. `photo-sorter serve` on it (only `--database`, host, port, a dead ML URL). For each depth d: the cursor of the
   person at position d of `GET /persons?min_photos=1` (read once through the API by offset, not timed), then
   `--requests` requests of the page after it (`limit=100&min_photos=1&after=…`; at depth 0 the first page with
   `count=false`, as the web page asks it, which fetches the counts apart) and as many of the same page by
   `offset=d` (with its counts at depth 0), interleaved, one at a time on a kept-alive connection. Latency = request sent to body read.
3. p50 / p99 / max per depth and way; the bar: p99 < 20 ms at every depth by cursor. The check: the cursor page
   and the offset page list the same persons.
"""
from __future__ import annotations

import argparse
import datetime
import http.client
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bench" / "files"))
sys.path.insert(0, str(REPO / "e2e"))
import follow_files as ff  # noqa: E402

DEPTHS = (0, 50_000, 500_000)
BAR_MS = 20.0
PG_DB = "photo_sorter_keyset_bench"


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def timed_get(conn: http.client.HTTPConnection, path: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    dt = (time.perf_counter() - t0) * 1000
    if r.status != 200:
        raise RuntimeError(f"GET {path}: HTTP {r.status}: {body[:300]!r}")
    return dt, json.loads(body)


def library(kind: str, args, work: Path) -> str:
    if kind == "sqlite":
        database = str(work / "keyset.sqlite")
        for suffix in ("", "-wal", "-shm"):
            Path(database + suffix).unlink(missing_ok=True)
    else:
        subprocess.run([str(REPO / "scripts" / "start-postgres.sh")], cwd=REPO, check=True, capture_output=True, timeout=600)
        admin = args.pg_base.rstrip("/") + "/postgres"
        ff.psql(admin, f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        ff.psql(admin, f'CREATE DATABASE "{PG_DB}"')
        database = args.pg_base.rstrip("/") + "/" + PG_DB
    n = args.persons + args.persons // 10
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(REPO / "bench" / "scale" / "generate_library.py"), "--database", database,
                        "--photos", str(n), "--persons", str(args.persons), "--faces", str(n), "--dim", "128",
                        "--binary", str(args.binary), "--force"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"generate_library.py exited {r.returncode}: {r.stderr[-2000:]}")
    ff.log(f"{kind}: library of {args.persons:,} persons generated in {time.perf_counter() - t0:.0f} s")
    return database


def run(kind: str, args, work: Path, ml_url: str) -> dict:
    database = library(kind, args, work)
    serve = ff.Serve(args.binary, database, work / f"{kind}.log", ml_url)
    out: dict = {"depths": {}}
    try:
        conn = http.client.HTTPConnection("127.0.0.1", serve.port, timeout=120)
        for depth in DEPTHS:
            _, before = timed_get(conn, f"/persons?limit=1&min_photos=1&offset={max(depth - 1, 0)}")
            after = None if depth == 0 else f"{before['persons'][0]['photo_count']},{before['persons'][0]['person_id']}"
            # The first page by cursor is the page without `after`, asked as the web page asks it (counts apart).
            cursor_path = "/persons?limit=100&min_photos=1" + (f"&after={after}" if after else "&count=false")
            offset_path = f"/persons?limit=100&min_photos=1&offset={depth}"
            by_cursor, by_offset = [], []
            _, a = timed_get(conn, cursor_path)
            _, b = timed_get(conn, offset_path)
            same = [p["person_id"] for p in a["persons"]] == [p["person_id"] for p in b["persons"]]
            for _ in range(args.requests):
                by_cursor.append(timed_get(conn, cursor_path)[0])
                by_offset.append(timed_get(conn, offset_path)[0])
            out["depths"][depth] = {
                "cursor": {"p50": statistics.median(by_cursor), "p99": percentile(by_cursor, 99), "max": max(by_cursor)},
                "offset": {"p50": statistics.median(by_offset), "p99": percentile(by_offset, 99), "max": max(by_offset)},
                "same_persons": same, "listed": len(a["persons"])}
            ff.log(f"{kind} depth {depth:,}: cursor p99 {out['depths'][depth]['cursor']['p99']:.1f} ms, "
                   f"offset p99 {out['depths'][depth]['offset']['p99']:.1f} ms, same persons {same}")
        conn.close()
    finally:
        serve.stop()
    if kind == "postgres":
        ff.psql(args.pg_base.rstrip("/") + "/postgres", f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--persons", type=int, default=600_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--databases", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    ap.add_argument("--binary", type=Path, default=REPO / ".build" / "release" / "photo-sorter")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/persons-keyset"))
    ap.add_argument("--pg-base", default="postgres://postgres@127.0.0.1:55432")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    args.binary = args.binary.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    ml = ff.MLCounter()
    report = {"started": started, "machine": ff.machine(), "persons": args.persons, "requests": args.requests,
              "commit": ff.git("rev-parse", "--short", "HEAD"), "runs": {},
              "command": "ml-service/.venv/bin/python bench/web/persons_keyset.py " + " ".join(sys.argv[1:])}
    try:
        for kind in args.databases:
            report["runs"][kind] = run(kind, args, args.workdir, f"http://127.0.0.1:{ml.port}")
    finally:
        ml.close()
    met = all(d["cursor"]["p99"] < BAR_MS for r in report["runs"].values() for d in r["depths"].values())
    report["bar_met"] = met
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    names = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    lines = [f"**`GET /persons` by cursor and by offset** ({started}, {report['machine']['text']}, commit {report['commit']}, "
             f"release build, default configuration; `{report['command']}`): {args.persons:,} persons (synthetic library), "
             f"pages of 100 with `min_photos=1`, {args.requests} requests per depth and way, interleaved.", "",
             "| database | depth | by cursor p50 / p99 / max | by offset p50 / p99 / max | same persons |", "|---|---|---|---|---|"]
    for kind, r in report["runs"].items():
        for depth, d in r["depths"].items():
            c, o = d["cursor"], d["offset"]
            lines.append(f"| {names[kind]} | {depth:,} | {c['p50']:.1f} / {c['p99']:.1f} / {c['max']:.1f} ms | "
                         f"{o['p50']:.1f} / {o['p99']:.1f} / {o['max']:.1f} ms | {d['same_persons']} |")
    lines += ["", f"Bar: p99 < {BAR_MS:.0f} ms at every depth by cursor: {'met' if met else 'MISSED'}."]
    md = "\n".join(lines)
    print(md)
    if args.md:
        args.md.write_text(md + "\n")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
