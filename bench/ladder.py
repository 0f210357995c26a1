#!/usr/bin/env python3
"""spool vs. the same ffmpeg commands in a plain script vs. the MediaCMS approach, in one run.

    python3 bench/ladder.py [--seconds 12] [--size 1920x1080] [--jobs 2] [--repeat 2]

1. spool, ladder mode (decode once per chunk, every rung through `split`);
2. a plain script replaying the exact argv spool ran (from --trace-commands), same parallelism;
3. spool, per_rung mode;
4. the MediaCMS approach: segments with audio, one ffmpeg per chunk x profile, each decoding
   its chunk, then concat per profile.
Each is run --repeat times, the order alternating between rounds, with a sync before every
timed run; the best time of each is compared, and every run is printed.
"""
import argparse, json, os, shutil, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RUNGS = [(240, 300), (360, 600), (480, 1000), (720, 2500), (1080, 4500)]  # height, kbit/s (spool's table)
FF = ["-hide_banner", "-nostdin", "-nostats", "-progress", "pipe:1"]  # what spool prefixes


def sh(argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ffmpeg(argv):
    sh(["ffmpeg", *FF, *argv])


def timed(fn):
    # Flush other writers' dirty pages first, so nobody's fsync pays for them.
    os.sync()
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def workflow(path, mode, preset, jobs):
    lines = [
        "version: 1", f"name: bench-{mode}",
        "chunking: {segment_seconds: 4, min_duration_seconds: 0}",
        f"encode: {{mode: {mode}, keyframe_interval_seconds: 2, concurrency: {jobs}}}",
        "profiles:",
    ]
    lines += [f"- {{name: h264-{h}p, codec: h264, height: {h}, preset: {preset}}}" for h, _ in RUNGS]
    path.write_text("\n".join(lines) + "\n")


def run_spool(spool, wf, src, root, trace=None):
    shutil.rmtree(root, ignore_errors=True)
    argv = [spool, "run", "--json", "--workflow", str(wf), "--out", str(root / "out"), "--state", str(root / "state")]
    if trace:
        argv += ["--trace-commands", str(trace), "--keep-work"]
    out = {}
    def go():
        p = subprocess.run(argv + [str(src)], check=True, capture_output=True, text=True, env={**os.environ, "SPOOL_LOG": "spool=warn"})
        out.update(json.loads(p.stdout.splitlines()[-1]))
    t = timed(go)
    assert out.get("status") == "succeeded", out
    return t


def replay(trace, jobs):
    """The plain script: spool's own command lines (program included), phase by phase, at
    the same parallelism."""
    cmds = [json.loads(l) for l in Path(trace).read_text().splitlines()]
    def phase(name):
        return [c["argv"] for c in cmds if c["phase"] == name]
    def go():
        for argv in phase("segment"):
            sh(argv)
        # Audio and video encodes share the pool, audio first, as in spool.
        for names in (("audio", "encode"), ("join",)):
            with ThreadPoolExecutor(jobs) as pool:
                list(pool.map(sh, [argv for n in names for argv in phase(n)]))
    return timed(go)


def mediacms(src, root, jobs, preset, fps=25):
    shutil.rmtree(root, ignore_errors=True)
    chunks = root / "chunks"
    chunks.mkdir(parents=True)
    def go():
        ffmpeg(["-y", "-i", str(src), "-map", "0", "-c", "copy", "-f", "segment", "-segment_time", "4",
                "-reset_timestamps", "1", str(chunks / "%03d.mp4")])
        parts = sorted(chunks.glob("*.mp4"))
        work = []
        for h, kbps in RUNGS:
            for c in parts:
                out = root / f"{c.stem}-{h}.mp4"
                g = str(2 * fps)
                work.append(["-y", "-i", str(c), "-vf", f"scale=-2:{h}:flags=bicubic", "-c:v", "libx264",
                             "-pix_fmt", "yuv420p", "-preset", preset, "-g", g, "-keyint_min", g, "-sc_threshold", "0",
                             "-crf", "23", "-maxrate", f"{kbps * 3 // 2}k", "-bufsize", f"{kbps * 2}k",
                             "-c:a", "aac", "-b:a", "128k", str(out)])
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(ffmpeg, work))
        joins = []
        for h, _ in RUNGS:
            lst = root / f"list-{h}.txt"
            lst.write_text("".join(f"file '{root / (c.stem + '-' + str(h) + '.mp4')}'\n" for c in parts))
            joins.append(["-y", "-f", "concat", "-safe", "0", "-i", str(lst), "-c", "copy", str(root / f"out-{h}.mp4")])
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(ffmpeg, joins))
    return timed(go)


def frames(path):
    p = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                        "stream=nb_read_packets", "-of", "csv=p=0", str(path)], capture_output=True, text=True)
    return p.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=12)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--spool", default="target/release/spool")
    ap.add_argument("--dir", default="bench/out")
    a = ap.parse_args()
    root = Path(a.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    spool = str(Path(a.spool).resolve())
    src = root / f"source-{a.size}-{a.seconds}s.mp4"
    if not src.exists():
        sh(["ffmpeg", "-y", "-f", "lavfi", "-i", f"testsrc2=s={a.size}:r=25:d={a.seconds}", "-f", "lavfi",
            "-i", f"sine=f=440:sample_rate=48000:d={a.seconds}", "-c:v", "libx264", "-preset", "veryfast",
            "-g", "50", "-c:a", "aac", "-shortest", str(src)])
    for mode in ("ladder", "per_rung"):
        workflow(root / f"{mode}.yaml", mode, a.preset, a.jobs)

    times = {k: [] for k in ("spool_ladder", "script_ladder", "spool_per_rung", "mediacms")}
    trace = root / "trace.jsonl"
    for i in range(a.repeat):
        # Alternate the order each round so neither side always runs first.
        if i % 2 == 0:
            trace.unlink(missing_ok=True)
            times["spool_ladder"].append(run_spool(spool, root / "ladder.yaml", src, root / "spool", trace))
            times["script_ladder"].append(replay(trace, a.jobs))
            times["spool_per_rung"].append(run_spool(spool, root / "per_rung.yaml", src, root / "spool-pr"))
            times["mediacms"].append(mediacms(src, root / "mediacms", a.jobs, a.preset))
        else:
            # The replay needs spool's work dir and trace from the round before.
            times["script_ladder"].append(replay(trace, a.jobs))
            trace.unlink(missing_ok=True)
            times["mediacms"].append(mediacms(src, root / "mediacms", a.jobs, a.preset))
            times["spool_per_rung"].append(run_spool(spool, root / "per_rung.yaml", src, root / "spool-pr"))
            times["spool_ladder"].append(run_spool(spool, root / "ladder.yaml", src, root / "spool", trace))
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), file=sys.stderr)

    best = {k: min(v) for k, v in times.items()}
    src_frames = frames(src)
    mc_frames = frames(root / "mediacms" / "out-1080.mp4")
    sp_frames = frames(root / "spool" / "out" / src.stem / f"{src.stem}.h264-1080p.mp4")
    print(f"source: {a.size}, {a.seconds}s, 25 fps, 5 rungs 240p-1080p, x264 {a.preset}, {a.jobs} jobs, best of {a.repeat}")
    print(f"| approach | wall time (s) | all runs |")
    print(f"|---|---|---|")
    for k, v in times.items():
        print(f"| {k} | {best[k]:.2f} | {', '.join(f'{x:.2f}' for x in v)} |")
    print(f"spool ladder / plain script of the same commands: {best['spool_ladder'] / best['script_ladder']:.3f}x (goal <= 1.03)")
    print(f"decode-once (spool ladder) vs MediaCMS approach: {100 * (1 - best['spool_ladder'] / best['mediacms']):.1f}% less wall time (goal >= 30%)")
    print(f"spool per_rung vs MediaCMS approach: {100 * (1 - best['spool_per_rung'] / best['mediacms']):.1f}% less wall time")
    print(f"frames: source {src_frames}, spool 1080p {sp_frames}, MediaCMS 1080p {mc_frames}")


if __name__ == "__main__":
    main()
