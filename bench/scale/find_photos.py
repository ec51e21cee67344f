#!/usr/bin/env python3
r"""Issue 25, "finding photos at a million photos": photos of several people together, and one person's photos of one
year, through the real `photo-sorter serve`, on SQLite and PostgreSQL.

    ml-service/.venv/bin/python bench/scale/find_photos.py --database (SQLITE_FILE | postgres://...) [--database ...] \
        [--photos N --persons M --faces K [--dim 128] [--seed S] [--force]] [--binary PATH] \
        [--requests 300] [--warmup 30] [--min-photos 10000] [--mid-photos 10000] [--year Y] \
        [--json bench/out/find-photos.json] [--results-md]
    ml-service/.venv/bin/python bench/scale/find_photos.py --from-json A.json [B.json ...] [--results-md]
        (the section of bench/RESULTS.md from earlier reports, e.g. one per database; runs nothing)

e.g. the issue's figures: `--database /tmp/find/lib-1m.sqlite --photos 1000000 --persons 100000 --faces 1000000
--dim 128 --force`, then the same with `--database postgres://postgres@127.0.0.1:55432/photo_sorter_find_1m`
(`scripts/start-postgres.sh` starts that server).

**The library.** With `--photos/--persons/--faces` each `--database` is first filled by
`bench/scale/generate_library.py` (which refuses a database holding a library unless `--force`, and takes the
schema from the binary). Without them the database must already hold a library the generator made (photo paths
under `/library/`, every photo dated): its persons are Zipf-sized (100k persons / 1M faces: the largest ~74k
photos, seven with >= 10k), each photo dated by its generated time (UTC wall clock, `taken_at_source` exif),
2008-2025 rising with the id. The vectors play no part here (`--dim 128` makes a smaller file). `serve` runs on
the library itself (no copy): it writes to it only what any start writes (a schema upgrade, its identity
snapshot).

**What is measured.** `BINARY serve` is started as `bench/scale/scale.py` starts it (its `Serve`: a dead ML URL, one
worker), and, on a library of >= 20,000 faces, the script waits until the service's identity snapshot is written
(its background write would otherwise fall among the requests). Then, per kind, `--warmup` requests (not counted)
and `--requests` sequential requests on one keep-alive connection, time from sending to the last body byte;
p50 / p99 / max in ms, and the machine's 1-minute load average after each kind (the cores may be shared with
other work). Every answer must be 200.

(a) photos of people together, first page (`limit=100`):
    `GET /photos?persons=a,b&match=all&order=id|taken` where a and b are, among the persons with >= `--min-photos`
    photos, the pair sharing the fewest photos (ties: the larger smaller person): the service walks the rarer
    person's photos until it has a page of shared ones; and `persons=a,b,c` for the three sharing the fewest
    (typically none: the whole rarest person is walked, the worst case). Bar: p99 < 50 ms.
(b) one person's photos of one year, oldest first: `GET /person/{id}/photos?from=Y-01-01&to=Y-12-31&order=taken&limit=100`
    for the person with the most photos and for the one closest to `--mid-photos`, Y the middle year of the
    library's `taken_at` span (`--year`); and the same through `GET /photos?persons=id&from=..&to=..&order=taken`.
    Bar: p99 < 30 ms.
Also (no bar): `persons=a,b&match=any&order=taken`.

When fewer than three persons have `--min-photos` photos (a small library), the eight largest are the candidates
and the report says so.

**Correctness.** The first page of every kind, and the page its `next_after` leads to, must equal a direct SQL query
on the database: the INTERSECT of the persons' `photo_persons` rows, ordered by `photos.taken_at, id` or by id (so
the copy of the date in `photo_persons` is checked against the photo's own); the year queries likewise from
`photos` joined to `photo_persons`; `next_after` / `next_after_id` must be the page's last photo when more follow;
each photo's `taken_at` must be the photo's and its `person_ids` must hold the persons asked for. The same
comparison runs (untimed) on `--check-sample` random pairs of the 40 largest persons (pairs that share more
than a page), in both orders.

**Query plans.** For every kind the report holds the plan of the query the service runs for it (rebuilt from
`Sources/PhotoSorterServer/Persistence/ReadQueries+PhotoSearch.swift` with literal values: SQLite `EXPLAIN QUERY
PLAN`, PostgreSQL `EXPLAIN (ANALYZE, BUFFERS)`); a kind over its bar gets its plan printed and written under the
table.

Output: the JSON report (`--json`) with machine, date, binary, counts, the persons chosen and every figure;
`--results-md` writes (or replaces) the section "Finding photos at a million photos (issue 25)" of
bench/RESULTS.md, one column per database. Exit 1 when a check failed or a request was not answered 200 (a missed
bar is reported, not an error).
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import scale  # noqa: E402  (its Serve, Client, Ports, machine, queries and the harness it imports)
from scale import Ports, Serve, is_postgres, machine, pct, q1, qall, table_row  # noqa: E402

harness = scale.harness
binary_note = scale.binary_note
psql = scale.psql

RESULTS_HEADING = "Finding photos at a million photos (issue 25)"
BARS = {"a": 50.0, "b": 30.0}          # p99 ms: (a) several persons together, (b) one person's year
SNAPSHOT_MIN_FACES = 20_000            # the service writes an identity snapshot from this many faces on (README)
PAGE = 100
# kind: (group, label in the table)
KINDS = {
    "pair_id": ("a", "`persons=a,b&match=all&order=id`"),
    "pair_taken": ("a", "`persons=a,b&match=all&order=taken`"),
    "triple_id": ("a", "`persons=a,b,c&match=all&order=id`"),
    "triple_taken": ("a", "`persons=a,b,c&match=all&order=taken`"),
    "year_person_largest": ("b", "`/person/{largest}/photos?from=Y-01-01&to=Y-12-31&order=taken`"),
    "year_person_mid": ("b", "`/person/{~10k}/photos?from=Y-01-01&to=Y-12-31&order=taken`"),
    "year_photos_largest": ("b", "`/photos?persons={largest}&from=..&to=..&order=taken`"),
    "year_photos_mid": ("b", "`/photos?persons={~10k}&from=..&to=..&order=taken`"),
    "pair_any_taken": ("", "`persons=a,b&match=any&order=taken`"),
}


def log(msg: str) -> None:
    print(f"[find-photos] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def loadavg() -> float | None:
    """The machine's 1-minute load average (the cores are shared: a high one explains a tail)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def db_label(database: str) -> str:
    return "PostgreSQL" if is_postgres(database) else "SQLite"


# --------------------------------------------------------------------------- the library

def generate(args, database: str, binary: Path) -> float:
    cmd = [sys.executable, str(HERE / "generate_library.py"), "--database", database, "--photos", str(args.photos),
           "--persons", str(args.persons), "--faces", str(args.faces), "--dim", str(args.dim), "--seed", str(args.seed),
           "--binary", str(binary)] + (["--force"] if args.force else [])
    log(f"generating: {' '.join(cmd[1:])}")
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, text=True, stdout=subprocess.PIPE)
    if r.returncode != 0:
        raise SystemExit(f"generate_library.py exited {r.returncode} (its messages are above)")
    sys.stderr.write(r.stdout)
    return time.perf_counter() - t0


def check_library(database: str) -> dict:
    ok, why = scale.check_generated(database)
    if not ok:
        raise SystemExit(f"{database}: not a library made by bench/scale/generate_library.py ({why})")
    undated = q1(database, "SELECT COUNT(*) FROM photos WHERE taken_at IS NULL OR taken_at_source IS NULL")
    if int(undated):
        raise SystemExit(f"{database}: {undated} photos have no taken date (a library generated before issue 25: "
                         "generate it again)")
    lib = scale.library_counts(database)
    lib["photo_persons"] = int(q1(database, "SELECT COUNT(*) FROM photo_persons"))
    lib["generator_check"] = why
    lo, hi = qall(database, "SELECT MIN(taken_at), MAX(taken_at) FROM photos")[0]
    lib["taken_span"] = [lo, hi]
    return lib


def person_photos(database: str, person: int) -> np.ndarray:
    return np.array(sorted(int(r[0]) for r in qall(database, f"SELECT photo_id FROM photo_persons WHERE person_id = {person}")),
                    dtype=np.int64)


def choose(database: str, lib: dict, args) -> dict:
    """The persons and the year of each kind."""
    persons = [(int(i), int(n)) for i, n in qall(database, "SELECT id, photo_count FROM persons WHERE merged_into IS NULL "
                                                           "ORDER BY photo_count DESC, id LIMIT 200")]
    big = [p for p in persons if p[1] >= args.min_photos]
    note = None
    if len(big) < 3:
        big = persons[:8]
        note = (f"fewer than 3 persons have >= {args.min_photos:,} photos: the candidates are the {len(big)} largest "
                f"({big[-1][1]:,}-{big[0][1]:,} photos)")
    big = big[:args.max_candidates]
    sets = {pid: person_photos(database, pid) for pid, _ in big}
    size = dict(big)
    for pid, s in sets.items():
        if s.size != size[pid]:
            raise SystemExit(f"person {pid}: photo_count {size[pid]} but {s.size} photo_persons rows")

    def shared(group) -> int:
        acc = sets[group[0]]
        for g in group[1:]:
            acc = np.intersect1d(acc, sets[g], assume_unique=True)
        return int(acc.size)

    pairs = sorted(((shared(g), -min(size[x] for x in g), g) for g in itertools.combinations(sets, 2)))
    triples = sorted(((shared(g), -min(size[x] for x in g), g) for g in itertools.combinations(sets, 3)))
    pair, triple = pairs[0][2], triples[0][2]
    largest = persons[0]
    others = [p for p in persons if p[0] != largest[0]]
    mid = min(others, key=lambda p: (abs(p[1] - args.mid_photos), p[0]))
    y0, y1 = int(lib["taken_span"][0][:4]), int(lib["taken_span"][1][:4])
    year = args.year or (y0 + y1) // 2

    def in_year(pid: int) -> int:
        return int(q1(database, f"SELECT COUNT(*) FROM photo_persons WHERE person_id = {pid} "
                                f"AND taken_at >= '{year}-01-01T00:00:00' AND taken_at <= '{year}-12-31T23:59:59'"))

    return {
        "min_photos": args.min_photos, "candidates": [{"id": p, "photos": n} for p, n in big], "candidates_note": note,
        "pair": {"ids": list(pair), "photos": [size[p] for p in pair], "shared": pairs[0][0]},
        "pair_shared_range": [pairs[0][0], pairs[-1][0]],
        "triple": {"ids": list(triple), "photos": [size[p] for p in triple], "shared": triples[0][0]},
        "year": year, "span_years": [y0, y1],
        "largest": {"id": largest[0], "photos": largest[1], "in_year": in_year(largest[0])},
        "mid": {"id": mid[0], "photos": mid[1], "in_year": in_year(mid[0])},
    }


def paths(ch: dict) -> dict:
    """kind -> (path of the first page, persons, order, (from, to) or None, match)."""
    pair = ",".join(map(str, ch["pair"]["ids"]))
    triple = ",".join(map(str, ch["triple"]["ids"]))
    y = ch["year"]
    rng = f"from={y}-01-01&to={y}-12-31"
    out = {}
    for order in ("id", "taken"):
        out[f"pair_{order}"] = (f"/photos?persons={pair}&match=all&order={order}&limit={PAGE}", ch["pair"]["ids"], order, None, "all")
        out[f"triple_{order}"] = (f"/photos?persons={triple}&match=all&order={order}&limit={PAGE}", ch["triple"]["ids"], order, None, "all")
    for who in ("largest", "mid"):
        pid = ch[who]["id"]
        out[f"year_person_{who}"] = (f"/person/{pid}/photos?{rng}&order=taken&limit={PAGE}", [pid], "taken", y, "all")
        out[f"year_photos_{who}"] = (f"/photos?persons={pid}&{rng}&order=taken&limit={PAGE}", [pid], "taken", y, "all")
    out["pair_any_taken"] = (f"/photos?persons={pair}&match=any&order=taken&limit={PAGE}", ch["pair"]["ids"], "taken", None, "any")
    return {k: out[k] for k in KINDS}


# --------------------------------------------------------------------------- correctness: the same page from SQL

def expected_rows(database: str, persons: list[int], order: str, year: int | None, match: str, offset: int) -> list[tuple]:
    """(id, taken_at) of the page at `offset` (PAGE + 1 rows, to know whether more follow), straight from SQL."""
    setop = " INTERSECT " if match == "all" else " UNION "
    ids = setop.join(f"SELECT photo_id FROM photo_persons WHERE person_id = {p}" for p in persons)
    where = [f"p.id IN ({ids})"]
    if year is not None:
        where.append(f"p.taken_at >= '{year}-01-01T00:00:00' AND p.taken_at <= '{year}-12-31T23:59:59'")
    by = "p.id" if order == "id" else "p.taken_at, p.id"
    rows = qall(database, f"SELECT p.id, p.taken_at FROM photos p WHERE {' AND '.join(where)} ORDER BY {by} "
                          f"LIMIT {PAGE + 1} OFFSET {offset}")
    return [(int(i), str(t)) for i, t in rows]


def compare_page(page: dict, exp: list[tuple], persons: list[int], order: str, match: str) -> list[str]:
    problems = []
    got = [p["photo_id"] for p in page["photos"]]
    want = [i for i, _ in exp[:PAGE]]
    if got != want:
        diff = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        problems.append(f"ids differ from SQL ({len(got)} vs {len(want)} photos; first difference at {diff}: "
                        f"{got[diff:diff + 3]} vs {want[diff:diff + 3]})")
    for p, (i, taken) in zip(page["photos"], exp):
        if p["photo_id"] == i and p.get("taken_at") != taken:
            problems.append(f"photo {i}: taken_at {p.get('taken_at')!r}, photos.taken_at {taken!r}")
            break
    for p in page["photos"]:
        held = set(p.get("person_ids") or [])
        if (match == "all" and not set(persons) <= held) or (match == "any" and not set(persons) & held):
            problems.append(f"photo {p['photo_id']}: person_ids {sorted(held)} do not hold {match} of {persons}")
            break
    more = len(exp) > PAGE
    last = exp[PAGE - 1] if more else None
    want_after = None if not more else (str(last[0]) if order == "id" else f"{last[1]},{last[0]}")
    if page.get("next_after") != want_after:
        problems.append(f"next_after {page.get('next_after')!r}, expected {want_after!r}")
    want_after_id = last[0] if more and order == "id" else None
    if page.get("next_after_id") != want_after_id:
        problems.append(f"next_after_id {page.get('next_after_id')!r}, expected {want_after_id!r}")
    return problems


def check_query(client: scale.Client, database: str, path: str, persons: list[int], order: str, year: int | None,
                match: str, first: dict | None = None) -> dict:
    """First page (given, or asked now) and the page its next_after leads to, each against SQL."""
    page = first if first is not None else client.json("GET", path)
    out = {"path": path, "first_page_photos": len(page["photos"]), "problems": []}
    out["problems"] += [f"page 1: {p}" for p in compare_page(page, expected_rows(database, persons, order, year, match, 0),
                                                             persons, order, match)]
    if page.get("next_after"):
        sep = "&" if "?" in path else "?"
        page2 = client.json("GET", f"{path}{sep}after={urllib.parse.quote(page['next_after'], safe='')}")
        out["second_page_photos"] = len(page2["photos"])
        out["problems"] += [f"page 2: {p}" for p in compare_page(page2, expected_rows(database, persons, order, year, match, PAGE),
                                                                 persons, order, match)]
    out["ok"] = not out["problems"]
    return out


# --------------------------------------------------------------------------- query plans

def service_sql(database: str, persons: list[int], order: str, year: int | None) -> str:
    """The key query `ReadQueries.personPhotoKeys` runs for match=all: the rarest person's rows, a probe per other."""
    counts = {p: int(q1(database, f"SELECT photo_count FROM persons WHERE id = {p}")) for p in persons}
    rarest = sorted(persons, key=lambda p: (counts[p], p))
    cond = [f"pp.person_id = {rarest[0]}"]
    if year is not None:
        cond += [f"pp.taken_at >= '{year}-01-01T00:00:00'", f"pp.taken_at <= '{year}-12-31T23:59:59'"]
    cond += [f"EXISTS (SELECT 1 FROM photo_persons o WHERE o.photo_id = pp.photo_id AND o.person_id = {o})" for o in rarest[1:]]
    by = "pp.photo_id" if order == "id" else "pp.taken_at, pp.photo_id"
    return f"SELECT pp.photo_id, pp.taken_at FROM photo_persons pp WHERE {' AND '.join(cond)} ORDER BY {by} LIMIT {PAGE + 1}"


def query_plan(database: str, sql: str) -> str:
    if is_postgres(database):
        return psql(database, f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
    rows = qall(database, f"EXPLAIN QUERY PLAN {sql}")
    return "\n".join(f"{r[0]}|{r[1]}| {r[3]}" for r in rows)


# --------------------------------------------------------------------------- one database

def measure(client: scale.Client, path: str, warmup: int, n: int) -> tuple[dict, dict]:
    """(latency figures, the first answer parsed). Every answer must be 200."""
    first = None
    for _ in range(warmup):
        status, data, _, _ = client.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {data[:300]!r}")
        first = first or json.loads(data)
    lat, sizes = [], []
    for _ in range(n):
        status, data, _, dt = client.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {data[:300]!r}")
        lat.append(dt * 1000)
        sizes.append(len(data))
    if first is None:
        first = json.loads(data)
    return {**pct(lat), "bytes_mean": float(np.mean(sizes))}, first


def run_database(args, database: str, binary: Path, workdir: Path, ports: Ports) -> dict:
    out: dict = {"database": db_label(database), "source": database, "checks": {}}
    if args.photos is not None:
        out["generate_seconds"] = round(generate(args, database, binary), 1)
    lib = check_library(database)
    out["library"] = lib
    log(f"{database}: {lib['photos']:,} photos, {lib['persons']:,} persons, {lib['faces']:,} faces; taken "
        f"{lib['taken_span'][0]} .. {lib['taken_span'][1]}")
    t0 = time.perf_counter()
    ch = choose(database, lib, args)
    out["chosen"] = ch
    out["choose_seconds"] = round(time.perf_counter() - t0, 1)
    log(f"pair {ch['pair']}, triple {ch['triple']}, year {ch['year']}, largest {ch['largest']}, ~{args.mid_photos:,}: "
        f"{ch['mid']}" + (f" ({ch['candidates_note']})" if ch["candidates_note"] else ""))
    kinds = paths(ch)
    secret = secrets.token_hex(16)
    s = Serve(args, binary, database, workdir, out["database"].lower(), ports, secret)
    try:
        out["startup_seconds"] = round(s.startup_seconds, 2)
        out["rss_ready_mib"] = round(scale.mib(s.mem_ready.get("VmRSS")), 0)
        log(f"serve ready in {s.startup_seconds:.1f} s (port {s.port})")
        if lib["faces"] >= SNAPSHOT_MIN_FACES:
            waited = scale.wait_for_snapshot(database, lib["faces"], args.snapshot_timeout)
            out["snapshot_wait_seconds"] = None if waited is None else round(waited, 1)
            log(f"identity snapshot: {'written after %.1f s' % waited if waited is not None else 'none within the timeout'}")
            time.sleep(1)
        c = s.client
        results, firsts = {}, {}
        for kind, (path, *_rest) in kinds.items():
            fig, first = measure(c, path, args.warmup, args.requests)
            fig["path"] = path
            fig["photos"] = len(first["photos"])
            fig["loadavg_1m_after"] = loadavg()
            results[kind] = fig
            firsts[kind] = first
            log(f"  {kind}: p50 {fig['p50']:.1f} / p99 {fig['p99']:.1f} / max {fig['max']:.1f} ms, "
                f"{fig['photos']} photos, {fig['bytes_mean'] / 1024:.0f} KiB, load {fig['loadavg_1m_after']}  {path}")
        out["figures"] = results
        # correctness: every kind's first page and the next, then a random sample of pairs
        checks = []
        for kind, (path, persons, order, year, match) in kinds.items():
            r = check_query(c, database, path, persons, order, year, match, first=firsts[kind])
            r["kind"] = kind
            checks.append(r)
        rng = random.Random(args.seed)
        pool = [int(r[0]) for r in qall(database, "SELECT id FROM persons WHERE merged_into IS NULL "
                                                  "ORDER BY photo_count DESC, id LIMIT 40")]
        for _ in range(args.check_sample if len(pool) >= 2 else 0):
            pair = sorted(rng.sample(pool, 2))
            for order in ("id", "taken"):
                path = f"/photos?persons={pair[0]},{pair[1]}&match=all&order={order}&limit={PAGE}"
                r = check_query(c, database, path, pair, order, None, "all")
                r["kind"] = "sample"
                checks.append(r)
        out["correctness"] = checks
        bad = [r for r in checks if not r["ok"]]
        for r in bad:
            log(f"  WRONG {r['kind']} {r['path']}: {r['problems']}")
        out["checks"]["pages_equal_sql"] = not bad
        log(f"correctness: {len(checks) - len(bad)}/{len(checks)} queries equal to SQL "
            f"({sum(1 for r in checks if r['kind'] == 'sample')} of them random pairs)")
        out["rss_end_mib"] = round(scale.mib(s.mem().get("rss_bytes")), 0)
    finally:
        s.stop()
    # plans (after the service stopped: EXPLAIN ANALYZE runs the query, it would compete with the requests)
    out["plans"] = {}
    for kind, (path, persons, order, year, match) in kinds.items():
        if match != "all":
            continue
        sql = service_sql(database, persons, order, year)
        try:
            out["plans"][kind] = {"sql": sql, "plan": query_plan(database, sql)}
        except Exception as e:  # noqa: BLE001 - a plan is a diagnosis, not a figure
            out["plans"][kind] = {"sql": sql, "plan": f"(failed: {e})"}
    out["missed"] = [k for k, f in out["figures"].items() if KINDS[k][0] and f["p99"] >= BARS[KINDS[k][0]]]
    for k in out["missed"]:
        log(f"{k} missed its bar (p99 {out['figures'][k]['p99']:.1f} ms >= {BARS[KINDS[k][0]]:.0f}); the plan of the "
            f"service's key query:\n{out['plans'].get(k, {}).get('sql')}\n{out['plans'].get(k, {}).get('plan')}")
    return out


# --------------------------------------------------------------------------- RESULTS.md

def fmt(f: dict | None) -> str:
    return "–" if not f or not f.get("n") else f"{f['p50']:.1f} / {f['p99']:.1f} / {f['max']:.1f}"


def results_md(reports: list[dict]) -> str:
    cfgs = [c for r in reports for c in r["databases"]]
    first = reports[0]
    lines = []
    for r in reports:
        line = f"Measured {r['date']} on {r['machine']['text']}; binary `{r['binary']}` ({r.get('binary_note', '')})."
        if line not in lines:
            lines.append(line)
    lines += ["", "```"] + [r["command"] for r in reports] + ["```", ""]
    lines += ["Synthetic libraries (`bench/scale/generate_library.py`: Zipf-sized persons placed at random over the photos; "
              "every photo dated by its generated time 2008-2025 as a UTC wall clock, `taken_at_source` exif, dates "
              "rising with the id, so taken order is id order; 128-d vectors, which play no part in these queries) "
              "served by the real `photo-sorter serve`. Latencies p50 / p99 / max in ms over "
              f"{first['parameters']['requests']} sequential requests on one keep-alive connection after "
              f"{first['parameters']['warmup']} not counted, first page of {PAGE}; the service and the client share "
              "the machine's cores. Details in the docstring of `bench/scale/find_photos.py`.", ""]

    def col(c: dict) -> str:
        n = c["library"]["photos"]
        size = f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}k"
        return f"{size} photos, {c['database']}"

    lines += ["| | " + " | ".join(col(c) for c in cfgs) + " | bar |", "|---|" + "---:|" * len(cfgs) + "---|"]

    def row(label: str, f, bar_text: str = "") -> None:
        lines.append(table_row(cfgs, label, f, bar_text))

    row("photos / persons / faces", lambda c: f"{c['library']['photos']:,} / {c['library']['persons']:,} / {c['library']['faces']:,}")
    row("pair a, b: photos each, shared", lambda c: f"{' + '.join(f'{n:,}' for n in c['chosen']['pair']['photos'])}, "
                                                    f"{c['chosen']['pair']['shared']:,} shared")
    row("three a, b, c: photos each, shared", lambda c: f"{' + '.join(f'{n:,}' for n in c['chosen']['triple']['photos'])}, "
                                                        f"{c['chosen']['triple']['shared']:,} shared")
    for kind, (group, label) in KINDS.items():
        if group == "a":
            row(f"(a) {label}", lambda c, k=kind: fmt(c["figures"][k]) + mark(c, k), f"p99 < {BARS['a']:.0f} ms")
    row("year Y; largest person: photos, in Y", lambda c: f"{c['chosen']['year']}; {c['chosen']['largest']['photos']:,}, "
                                                          f"{c['chosen']['largest']['in_year']:,}")
    row("person of ~10k: photos, in Y", lambda c: f"{c['chosen']['mid']['photos']:,}, {c['chosen']['mid']['in_year']:,}")
    for kind, (group, label) in KINDS.items():
        if group == "b":
            row(f"(b) {label}", lambda c, k=kind: fmt(c["figures"][k]) + mark(c, k), f"p99 < {BARS['b']:.0f} ms")
    for kind, (group, label) in KINDS.items():
        if not group:
            row(label + " (first page)", lambda c, k=kind: fmt(c["figures"][k]))
    row("machine load (1-minute average) after the kinds: min-max", lambda c: "{:.1f}-{:.1f}".format(
        min(f["loadavg_1m_after"] for f in c["figures"].values()), max(f["loadavg_1m_after"] for f in c["figures"].values())))
    row("serve ready after / identity snapshot complete after, s", lambda c: f"{c['startup_seconds']:.1f} / "
        + ("–" if c.get("snapshot_wait_seconds") is None else f"{c['snapshot_wait_seconds']:.1f}"))
    row("pages equal to SQL (kinds' first and second pages, random pairs)",
        lambda c: f"{sum(1 for r in c['correctness'] if r['ok'])} / {len(c['correctness'])}"
                  + ("" if c["checks"].get("pages_equal_sql") else " **wrong**"))
    lines.append("")
    verdicts = []
    for c in cfgs:
        for g in ("a", "b"):
            worst = max((c["figures"][k]["p99"], k) for k in c["figures"] if KINDS[k][0] == g)
            verdicts.append(f"{col(c)} ({g}) worst p99 {worst[0]:.1f} ms ({worst[1]}) {'✅' if worst[0] < BARS[g] else '❌'}")
    lines += ["Against the bars: " + "; ".join(verdicts) + ".", ""]
    for c in cfgs:
        if c.get("candidates_note") or c["chosen"].get("candidates_note"):
            lines.append(f"- {col(c)}: {c['chosen']['candidates_note']}")
        for k in c.get("missed", []):
            p = c["plans"].get(k, {})
            lines += [f"- {col(c)}: {k} over its bar; the plan of the service's key query `{p.get('sql')}`:", "",
                      "```", p.get("plan", "").strip(), "```", ""]
    for r in reports:
        lines += [f"- {n}" for n in r.get("notes", [])]
    return "\n".join(lines).rstrip("\n") + "\n"


def mark(c: dict, kind: str) -> str:
    return " ❌" if kind in c.get("missed", []) else ""


# --------------------------------------------------------------------------- main

def main() -> int:
    signal.signal(signal.SIGTERM, scale._stop_on_signal)
    signal.signal(signal.SIGINT, scale._stop_on_signal)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database", action="append", default=[],
                    help="SQLite file or postgres://user@host:port/db (repeatable: one column each)")
    ap.add_argument("--photos", type=int, help="generate the library first (with --persons and --faces)")
    ap.add_argument("--persons", type=int)
    ap.add_argument("--faces", type=int)
    ap.add_argument("--dim", type=int, default=128, choices=[128, 512])
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--force", action="store_true", help="let the generator replace a database that holds a library")
    ap.add_argument("--binary", type=Path, default=None, help="default: $PHOTO_SORTER_BIN, else .build/release/photo-sorter")
    ap.add_argument("--requests", type=int, default=300, help="measured requests per kind (default %(default)s)")
    ap.add_argument("--warmup", type=int, default=30, help="requests per kind before measuring (default %(default)s)")
    ap.add_argument("--min-photos", type=int, default=10_000, help="persons of (a) have at least this many photos")
    ap.add_argument("--mid-photos", type=int, default=10_000, help="(b)'s second person has about this many photos")
    ap.add_argument("--max-candidates", type=int, default=12, help="at most this many of the largest persons for (a)")
    ap.add_argument("--year", type=int, default=None, help="(b)'s year (default: the middle of the library's span)")
    ap.add_argument("--check-sample", type=int, default=10, help="random pairs also checked against SQL (default %(default)s)")
    ap.add_argument("--startup-timeout", type=float, default=600)
    ap.add_argument("--snapshot-timeout", type=float, default=300)
    ap.add_argument("--ports", default="18200-18299")
    ap.add_argument("--workdir", type=Path, default=None, help="serve logs (default: a temporary directory, removed)")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "find-photos.json")
    ap.add_argument("--results-md", action="store_true", help=f"write the section \"{RESULTS_HEADING}\" of bench/RESULTS.md")
    ap.add_argument("--from-json", type=Path, nargs="+", default=None,
                    help="the RESULTS.md section from earlier reports (one column per database of each); runs nothing")
    ap.add_argument("--note", action="append", default=[], help="an extra line under the table (repeatable)")
    args = ap.parse_args()

    if args.from_json:
        reports = [json.loads(p.read_text()) for p in args.from_json]
        reports[-1]["notes"] = reports[-1].get("notes", []) + args.note
        text = results_md(reports)
        print(text)
        if args.results_md:
            harness.update_results_section(REPO / "bench" / "RESULTS.md", RESULTS_HEADING, text)
            log("bench/RESULTS.md updated")
        return 0
    if not args.database:
        ap.error("--database is required (or --from-json)")
    if (args.photos is None) != (args.persons is None) or (args.photos is None) != (args.faces is None):
        ap.error("--photos, --persons and --faces go together")
    if args.binary:
        binary = args.binary.absolute()
    elif os.environ.get("PHOTO_SORTER_BIN"):
        binary = Path(os.environ["PHOTO_SORTER_BIN"]).absolute()
    else:
        binary = REPO / ".build" / "release" / "photo-sorter"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise SystemExit(f"binary not found or not executable: {binary}")
    databases = [d if is_postgres(d) else str(Path(d).resolve()) for d in args.database]
    if any(is_postgres(d) for d in databases):
        scale.psql_bin()
    lo, _, hi = args.ports.partition("-")
    ports = Ports(int(lo), int(hi))
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="find-photos-", dir="/tmp"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    mtime = datetime.datetime.fromtimestamp(binary.stat().st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "binary": os.path.relpath(binary, REPO) if str(binary).startswith(str(REPO)) else str(binary),
        "binary_mtime": mtime, "binary_note": binary_note(binary, mtime),
        "command": "ml-service/.venv/bin/python bench/scale/find_photos.py " + " ".join(sys.argv[1:]),
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "bars_p99_ms": BARS, "databases": [], "failures": [], "notes": args.note,
    }

    def save() -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2, default=str))

    try:
        for database in databases:
            try:
                report["databases"].append(run_database(args, database, binary, workdir, ports))
            except (Exception, SystemExit) as e:  # noqa: BLE001 - the other database still runs
                if isinstance(e, SystemExit) and isinstance(e.code, int) and e.code >= 128:
                    raise  # a signal
                log(f"{database} FAILED: {type(e).__name__}: {e}")
                report["failures"].append(f"{database}: {type(e).__name__}: {str(e)[:2000]}")
            finally:
                save()
    finally:
        save()
        if args.workdir is None and not report["failures"]:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"serve logs kept in {workdir}")
    summary = {k: report[k] for k in ("date", "machine", "binary", "binary_note", "command", "failures")}
    summary["databases"] = [{k: c.get(k) for k in ("database", "source", "library", "chosen", "startup_seconds",
                                                   "snapshot_wait_seconds", "figures", "missed", "checks")}
                            for c in report["databases"]]
    print(json.dumps(summary, indent=2, default=str))
    if args.json:
        log(f"wrote {args.json}")
    if args.results_md and report["databases"]:
        harness.update_results_section(REPO / "bench" / "RESULTS.md", RESULTS_HEADING, results_md([report]))
        log("bench/RESULTS.md updated")
    failed = bool(report["failures"]) or any(not all(c["checks"].values()) for c in report["databases"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
