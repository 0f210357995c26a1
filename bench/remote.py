#!/usr/bin/env python3
"""The local queue against Redis with spool workers, at the same total parallelism, in one run.

One generated 1080p clip, the ladder bench's 5 rungs (240p-1080p, x264 veryfast, 4 s chunks):
1. `spool watch` encoding on its own queue, 2 ffmpeg at a time;
2. `spool watch` with `queue: redis://...` and 2 `spool worker` processes of 1 slot each, on this
   machine, moving every chunk and result over HTTP (no shared storage).
Each round starts from a fresh coordinator state (no cache to reuse); rounds alternate. Reports wall
seconds from submission to success, the ratio, bytes moved per chunk, and coordinator time per
remote task (checking and admitting its result) and coordinator CPU seconds. Needs
`cargo build --release` and redis-server. Not a test: the machine is noisy."""
import argparse, json, os, shutil, signal, socket, subprocess, tempfile, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPOOL = os.environ.get("SPOOL_BIN", str(ROOT / "target" / "release" / "spool"))
RUNGS = [240, 360, 480, 720, 1080]
TOKEN = "bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, path, body=None):
    req = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def metrics(url):
    out = {}
    for line in call(url, "/metrics").decode().splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def coordinator(d, redis_url):
    for sub in ("media", "published", "in", "out"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    lines = ["version: 1", "name: web", "chunking: {segment_seconds: 4, min_duration_seconds: 0}",
             "encode: {mode: ladder, keyframe_interval_seconds: 2}", "profiles:"]
    lines += [f"- {{name: h264-{h}p, codec: h264, height: {h}, preset: veryfast}}" for h in RUNGS]
    lines += ["watch: {folders: [in], output: out}"]
    (d / "wf.yaml").write_text("\n".join(lines) + "\n")
    port = free_port()
    cfg = (f"state: state\nlisten: 127.0.0.1:{port}\ntoken: {TOKEN}\nworkflows: [wf.yaml]\nmax_jobs: 1\n"
           "concurrency: 2\napi: {input_roots: [media], output_roots: [published]}\n")
    if redis_url:
        cfg += f"queue: {{redis: \"{redis_url}\"}}\n"
    (d / "spool.yaml").write_text(cfg)
    p = subprocess.Popen([SPOOL, "watch", "--config", str(d / "spool.yaml")],
                         stderr=open(d / "watch.log", "w"), env={**os.environ, "SPOOL_LOG": "spool=warn"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            call(url, "/v1/health")
            return p, url
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the coordinator did not start")


def one_round(work, src, redis_url):
    d = Path(tempfile.mkdtemp(prefix="spool-remote-", dir=work))
    p, url = coordinator(d, redis_url)
    # Two workers of one slot each: the same parallelism as the local queue's 2 slots.
    ws = [] if not redis_url else [
        subprocess.Popen([SPOOL, "worker", "--queue", redis_url, "--coordinator", url, "--token", TOKEN,
                          "--concurrency", "1", "--name", f"w{i}", "--work", str(work / f"w{i}")],
                         stderr=subprocess.DEVNULL, env={**os.environ, "SPOOL_LOG": "spool=warn"}) for i in (1, 2)]
    time.sleep(1.0 if ws else 0)
    try:
        shutil.copy(src, d / "media" / "clip.mp4")
        os.sync()
        cpu0, t = cpu_seconds(p.pid), time.monotonic()
        job = json.loads(call(url, "/v1/jobs", {"input": str(d / "media" / "clip.mp4"), "workflow": "web",
                                                "output": str(d / "published")}))["id"]
        while True:
            state = json.loads(call(url, f"/v1/jobs/{job}"))
            if state["job"]["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.1)
        wall = time.monotonic() - t
        assert state["job"]["status"] == "succeeded", state["job"]
        m = metrics(url)
        return {"wall": wall, "cpu": cpu_seconds(p.pid) - cpu0, "chunks": state["job"]["chunks"],
                "tasks": len(state["tasks"]), "workers": sorted({t.get("worker") or "local" for t in state["tasks"]}), **m}
    finally:
        for w in ws:
            w.terminate()
            w.wait()
        p.send_signal(signal.SIGTERM)
        p.wait()
        shutil.rmtree(d, ignore_errors=True)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--seconds", type=int, default=30)
    a.add_argument("--rounds", type=int, default=2)
    args = a.parse_args()
    work = Path(tempfile.mkdtemp(prefix="spool-bench-remote-"))
    src = work / "src.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s=1920x1080:r=25:d={args.seconds}",
                    "-f", "lavfi", "-i", f"sine=f=440:sample_rate=48000:d={args.seconds}", "-c:v", "libx264",
                    "-preset", "veryfast", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", str(src)], check=True)
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                              "--appendonly", "no", "--dir", str(work)], stdout=subprocess.DEVNULL)
    redis_url = f"redis://127.0.0.1:{port}"
    time.sleep(0.5)
    results = {"local": [], "redis": []}
    try:
        for r in range(args.rounds):
            for kind in (("local", "redis") if r % 2 == 0 else ("redis", "local")):
                results[kind].append(one_round(work, src, redis_url if kind == "redis" else None))
                print(kind, json.dumps({k: v for k, v in results[kind][-1].items() if not k.startswith("spool_") or "remote" in k or "blob" in k}), flush=True)
    finally:
        redis.terminate()
        shutil.rmtree(work, ignore_errors=True)
    best = {k: min(x["wall"] for x in v) for k, v in results.items()}
    r = results["redis"][-1]
    moved = r.get("spool_blob_bytes_sent_total", 0) + r.get("spool_blob_bytes_received_total", 0)
    walls = {k: ", ".join("%.2f" % x["wall"] for x in v) for k, v in results.items()}
    print(f"\nlocal queue: {walls['local']} s; redis + 2 workers: {walls['redis']} s; "
          f"best redis / best local = {best['redis'] / best['local']:.3f}x")
    print(f"chunks {r['chunks']}, tasks {r['tasks']}, bytes moved {moved / 1e6:.1f} MB "
          f"= {moved / r['chunks'] / 1e6:.2f} MB per chunk (down {r.get('spool_blob_bytes_sent_total', 0) / r['chunks'] / 1e6:.2f}, "
          f"up {r.get('spool_blob_bytes_received_total', 0) / r['chunks'] / 1e6:.2f})")
    intakes = max(r.get("spool_remote_intakes_total", 0), 1)
    print(f"coordinator: {r.get('spool_remote_intake_milliseconds_total', 0) / intakes:.1f} ms per task to check and admit a "
          f"result; CPU {r['cpu']:.2f} s (redis) vs {results['local'][-1]['cpu']:.2f} s (local, encodes included)")


if __name__ == "__main__":
    main()
