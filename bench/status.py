#!/usr/bin/env python3
"""How fast `spool status` and the jobs API answer with many jobs in the store.

    python3 bench/status.py [--jobs 100000] [--spool target/release/spool]

Fills a state directory with N finished jobs (examples/fill_store.rs), starts `spool watch`
on it, and times, best and median of 20: `spool status` (the newest 50 jobs, through the API),
GET /v1/jobs (one page), GET /v1/jobs?state=failed, and `spool status JOB`; then stops the
daemon and times `spool status` reading sled directly.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path


def timed(fn, n=20):
    runs = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        runs.append(1000 * (time.perf_counter() - t))
    return min(runs), statistics.median(runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100000)
    ap.add_argument("--spool", default="target/release/spool")
    ap.add_argument("--fill", default="target/release/examples/fill_store")
    a = ap.parse_args()
    spool = str(Path(a.spool).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        state = tmp / "state"
        t = time.perf_counter()
        subprocess.run([a.fill, str(state), str(a.jobs)], check=True, stdout=subprocess.DEVNULL)
        fill_s = time.perf_counter() - t
        (tmp / "in").mkdir()
        (tmp / "wf.yaml").write_text("version: 1\nname: bench\nprofiles:\n- {name: p144, codec: h264, height: 144}\n"
                                     "watch: {folders: [in], output: out}\n")
        (tmp / "spool.yaml").write_text("state: state\nlisten: 127.0.0.1:0\nworkflows: [wf.yaml]\n")
        daemon = subprocess.Popen([spool, "watch", "--config", str(tmp / "spool.yaml")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                if (state / "daemon.json").exists():
                    break
                time.sleep(0.05)
            url = json.loads((state / "daemon.json").read_text())["url"]
            get = lambda path: urllib.request.urlopen(url + path).read()
            cli = lambda *args: subprocess.run([spool, "status", "--state", str(state), *args],
                                               check=True, stdout=subprocess.DEVNULL)
            some_id = json.loads(get("/v1/jobs?limit=1"))["jobs"][0]["id"]
            rows = [
                ("spool status (newest 50, via the API)", timed(lambda: cli())),
                ("GET /v1/jobs (page of 50)", timed(lambda: get("/v1/jobs"))),
                ("GET /v1/jobs?state=failed (page of 50)", timed(lambda: get("/v1/jobs?state=failed"))),
                ("spool status JOB", timed(lambda: cli(some_id))),
            ]
        finally:
            daemon.terminate()
            daemon.wait()
        rows.append(("spool status (newest 50, from sled, no daemon)", timed(lambda: cli())))
    print(f"{a.jobs} jobs (filled in {fill_s:.1f} s); milliseconds, best and median of 20:")
    print("| call | best ms | median ms |\n|---|---|---|")
    for name, (best, median) in rows:
        print(f"| {name} | {best:.1f} | {median:.1f} |")


if __name__ == "__main__":
    main()
