#!/usr/bin/env python3
"""What exact frame-range chunks cost against copy cuts, and what they give on a long GOP.

    SPOOL_BIN=target/release/spool python3 bench/chunking.py [--seconds 20] [--repeat 2]

A. The 1080p five-rung ladder (x264 veryfast, 4 s chunks) on a source with 2 s GOPs:
   `cut: frames` (each task decodes from the keyframe before its range and trims) against
   `cut: copy` (the segment muxer copies chunks at keyframes). The ratio is the pre-roll
   decode's cost (goal <= 1.05).
B. The same ladder on a source with one keyframe every 10 s: copy cuts can only cut at
   those keyframes (a 20 s source gives 2 chunks), frame ranges cut every 4 s. The ratio is
   the parallel speed-up spool's own boundaries give (2 cores here: at most ~2x).
Both sides of a comparison alternate; the best of --repeat is compared. Every run is checked:
the job succeeded and its output has the source's frame count.
"""
import argparse, json, os, shutil, subprocess, time
from pathlib import Path

from spool_run import run_spool

RUNGS = [240, 360, 480, 720, 1080]


def sh(argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def workflow(path, cut):
    lines = ["version: 1", f"name: bench-{cut}",
             f"chunking: {{segment_seconds: 4, min_duration_seconds: 0, cut: {cut}}}",
             "encode: {mode: ladder, keyframe_interval_seconds: 2}", "profiles:"]
    lines += [f"- {{name: h264-{h}p, codec: h264, height: {h}, preset: veryfast}}" for h in RUNGS]
    path.write_text("\n".join(lines) + "\n")


def frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
                          "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip().strip(","))


def run_checked(spool, wf, src, root):
    elapsed, out = run_spool(spool, src, root, wf)
    top = root / "out" / src.stem / f"{src.stem}.h264-1080p.mp4"
    assert frames(top) == frames(src), (top, frames(top), frames(src))
    return elapsed, out.get("chunks")


def source(d, seconds, gop, name):
    path = d / name
    sh(["ffmpeg", "-y", "-f", "lavfi", "-i", f"testsrc2=s=1920x1080:r=25:d={seconds}",
        "-f", "lavfi", "-i", f"sine=f=440:d={seconds}:r=48000", "-map", "0", "-map", "1",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-g", str(gop),
        "-keyint_min", str(gop), "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)])
    return path


def compare(spool, frames_wf, copy_wf, src, root, repeat, label):
    times = {"frames": [], "copy": []}
    chunks = {}
    for r in range(repeat):
        order = [("frames", frames_wf), ("copy", copy_wf)]
        for side, wf in (order if r % 2 == 0 else order[::-1]):
            t, n = run_checked(spool, wf, src, root / f"{label}-{side}")
            times[side].append(t)
            chunks[side] = n
            print(f"  {label} round {r+1}: {side}: {t:.2f} s ({n} chunks)", flush=True)
    return min(times["frames"]), min(times["copy"]), chunks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    spool = os.environ.get("SPOOL_BIN", "target/release/spool")
    root = Path(os.environ.get("BENCH_DIR", "/tmp/spool-bench-chunking"))
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    frames_wf, copy_wf = root / "frames.yaml", root / "copy.yaml"
    workflow(frames_wf, "frames")
    workflow(copy_wf, "copy")
    short = source(root, args.seconds, 50, "gop2s.mp4")
    long = source(root, args.seconds, 250, "gop10s.mp4")
    print(f"A. 1080p, {args.seconds} s, 2 s GOPs: frame ranges vs copy cuts")
    f, c, n = compare(spool, frames_wf, copy_wf, short, root, args.repeat, "A")
    print(f"   frames {f:.2f} s ({n['frames']} chunks), copy {c:.2f} s ({n['copy']} chunks): ratio {f / c:.3f} (goal <= 1.05)")
    print(f"B. 1080p, {args.seconds} s, 10 s GOPs: frame ranges vs copy cuts")
    f, c, n = compare(spool, frames_wf, copy_wf, long, root, args.repeat, "B")
    print(f"   frames {f:.2f} s ({n['frames']} chunks), copy {c:.2f} s ({n['copy']} chunks): speed-up {c / f:.2f}x")


if __name__ == "__main__":
    main()
