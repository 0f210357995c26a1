#!/usr/bin/env python3
"""The same content again, under another name: what the second job costs against the first.

    SPOOL_BIN=target/release/spool python3 bench/reuse.py [--seconds 30] [--repeat 3]

The default workflow (five H.264 rungs and a GIF) on a 1080p clip, then on a renamed copy of
it into the same output root: the second job reuses every output after checking its SHA-256.
Goal: second run / first run <= 0.03. Each round starts from an empty state directory.
"""
import argparse, json, os, shutil, subprocess, time
from pathlib import Path

from spool_run import run_spool


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    spool = os.environ.get("SPOOL_BIN", "target/release/spool")
    root = Path(os.environ.get("BENCH_DIR", "/tmp/spool-bench-reuse"))
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    src = root / "talk.mp4"
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=s=1920x1080:r=25:d={args.seconds}",
                    "-f", "lavfi", "-i", f"sine=f=440:d={args.seconds}", "-c:v", "libx264", "-preset", "ultrafast",
                    "-crf", "18", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", str(src)], check=True)
    ratios = []
    for r in range(args.repeat):
        work = root / f"round{r}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        first, _ = run_spool(spool, src, work, fresh=False)
        copy = work / "lecture.mp4"
        shutil.copy(src, copy)
        second, out = run_spool(spool, copy, work, fresh=False)
        manifest = json.loads(Path(out["manifest"]).read_text())
        assert manifest.get("reused_from"), manifest
        ratios.append(second / first)
        print(f"round {r+1}: first {first:.2f} s, renamed copy {second:.3f} s: ratio {second / first:.4f}", flush=True)
    print(f"best ratio {min(ratios):.4f}, worst {max(ratios):.4f} (goal <= 0.03)")


if __name__ == "__main__":
    main()
