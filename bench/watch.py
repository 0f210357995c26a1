#!/usr/bin/env python3
"""spool watch under a flood: 10,000 small files dropped at once (non-media and a few tiny
clips). Measures the time until every file is seen and admitted (queued for its job) or
rejected, the daemon's peak RSS, the latency of status calls while it works, and the size of
the sled directory. Needs cargo build --release. Not a test: the numbers are noisy."""
import json, os, shutil, signal, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPOOL = os.environ.get("SPOOL_BIN", os.path.join(ROOT, "target", "release", "spool"))
N = int(os.environ.get("FILES", "10000"))
CLIPS = 10


def get(url, path):
    t = time.perf_counter()
    with urllib.request.urlopen(url + path, timeout=30) as r:
        body = r.read()
    return body, (time.perf_counter() - t) * 1000


def metric(text, name):
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def du(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def main():
    d = tempfile.mkdtemp(prefix="spool-flood-")
    inbox, staging = os.path.join(d, "in"), os.path.join(d, "staging")
    os.makedirs(inbox), os.makedirs(staging)
    with open(os.path.join(d, "wf.yaml"), "w") as f:
        f.write("version: 1\nname: flood\nchunking: {enabled: false}\n"
                "profiles:\n- {name: p144, codec: h264, height: 144, always_encode: true, preset: ultrafast}\n"
                "watch: {folders: [in], output: out, settle_seconds: 1, rescan_seconds: 600, max_attempts: 1}\n")
    with open(os.path.join(d, "spool.yaml"), "w") as f:
        f.write("state: state\nlisten: 127.0.0.1:0\nworkflows: [wf.yaml]\nmax_jobs: 2\n")
    # Staged on the same file system, then renamed in at once.
    for i in range(CLIPS):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=s=64x36:r=10:d=1,hue=h={i * 30}", "-c:v", "libx264",
                        "-preset", "ultrafast", os.path.join(staging, f"clip{i}.mp4")], check=True)
    for i in range(N - CLIPS):
        with open(os.path.join(staging, f"note{i:05d}.mp4"), "w") as f:
            f.write(f"not a video {i}\n")
    daemon = subprocess.Popen([SPOOL, "watch", "--config", os.path.join(d, "spool.yaml")],
                              stderr=open(os.path.join(d, "watch.log"), "w"))
    endpoint = os.path.join(d, "state", "daemon.json")
    while not os.path.exists(endpoint):
        time.sleep(0.05)
    time.sleep(0.3)
    url = json.load(open(endpoint))["url"]
    start = time.perf_counter()
    for name in os.listdir(staging):
        os.rename(os.path.join(staging, name), os.path.join(inbox, name))
    dropped = time.perf_counter() - start
    while True:
        text, _ = get(url, "/metrics")
        if metric(text, "spool_files_admitted_total") >= N:
            break
        time.sleep(0.05)
    admitted = time.perf_counter() - start
    lat_jobs, lat_job, lat_metrics = [], [], []
    for _ in range(10):
        body, ms = get(url, "/v1/jobs")
        lat_jobs.append(ms)
        jobs = json.loads(body)["jobs"]
        if jobs:
            _, ms = get(url, "/v1/jobs/" + jobs[0]["id"])
            lat_job.append(ms)
        _, ms = get(url, "/metrics")
        lat_metrics.append(ms)
        time.sleep(0.2)
    t = time.perf_counter()
    subprocess.run([SPOOL, "status", "--state", os.path.join(d, "state"), jobs[0]["id"]],
                   capture_output=True, check=True)
    cli_ms = (time.perf_counter() - t) * 1000
    status = open(f"/proc/{daemon.pid}/status").read()
    hwm = next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1]
    daemon.send_signal(signal.SIGTERM)
    code = daemon.wait(timeout=120)
    med = lambda xs: sorted(xs)[len(xs) // 2]
    print(f"{N} files renamed into the folder in {dropped:.2f} s")
    print(f"all {N} seen and admitted after {admitted:.2f} s (goal ≤ 10 s)")
    print(f"peak RSS {int(hwm) / 1024:.0f} MB (goal ≤ 150 MB)")
    print(f"status latency while working, median of 10: GET /v1/jobs ({len(jobs)} jobs) {med(lat_jobs):.0f} ms, "
          f"GET /v1/jobs/ID {med(lat_job):.1f} ms, /metrics {med(lat_metrics):.0f} ms; "
          f"`spool status ID` (CLI, process start included) {cli_ms:.0f} ms (goal ≤ 100 ms)")
    print(f"sled directory {du(os.path.join(d, 'state', 'db')) / 1e6:.1f} MB; SIGTERM exit code {code}")
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
