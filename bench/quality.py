#!/usr/bin/env python3
"""Quality targets against the fixed-CRF ladder, in one run.

A corpus of generated clips of different complexity (plus any --clip you pass), each through a
4-rung H.264 ladder (240p-720p, x264 veryfast, 2 s chunks):
1. fixed CRF 23 on every rung (--preset: another x264 preset than veryfast);
2. `quality: {metric: vmaf, target: 93, scope: chunk}` on every rung (probes at the rung's preset:
   the chosen probe is the encode);
3. the same with `probe_preset: ultrafast` (--probe-preset; cheaper probes: does the CRF transfer?).
For each: wall seconds, bytes of the published rungs, and every rung's VMAF against the source
measured here (not by spool) on every frame at the rung's own size (the source scaled to it), as
`scored_at: rung` scores.
With --per-title: the fixed CRF-23 ladder against `ladder: per_title` over the same four profiles
(candidates sampled at CRF 20-36 on 3 chunks, up to 4 rungs from the hull), every rung scored at the
display size (the source's), as a viewer sees it and as the hull is built. Rounds alternate; each run
starts from a fresh state (no cache). Needs `cargo build --release` and an ffmpeg with libvmaf
(SPOOL_METRICS_FFMPEG, or the imageio-ffmpeg wheel). Not a test: the machine is noisy."""
import argparse, json, os, shutil, subprocess, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPOOL = os.environ.get("SPOOL_BIN", str(ROOT / "target" / "release" / "spool"))
RUNGS = [240, 360, 480, 720]
SOURCE_SIZE = (1280, 720)
CLIPS = {
    "bars (easy)": "smptehdbars=s=1280x720:r=25:d={d},drawbox=x='mod(t*200,1100)':y=300:w=120:h=120:c=white:t=fill",
    "testsrc2 (motion)": "testsrc2=s=1280x720:r=25:d={d}",
    "mandelbrot (detail)": "mandelbrot=s=1280x720:r=25,trim=duration={d}",
    "grain (hard)": "testsrc2=s=1280x720:r=25:d={d},noise=alls=18:allf=t+u",
}


def metrics_ffmpeg():
    if os.environ.get("SPOOL_METRICS_FFMPEG"):
        return os.environ["SPOOL_METRICS_FFMPEG"]
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def workflow(path, rung, head="", preset="veryfast"):
    profiles = "".join(
        f"  - {{name: p{h}, codec: h264, height: {h}, preset: {preset}{', ' + rung if rung else ''}}}\n"
        for h in RUNGS)
    path.write_text(
        "version: 1\nname: q\nchunking: {segment_seconds: 2, min_duration_seconds: 0}\n"
        "encode: {keyframe_interval_seconds: 2}\n" + head + "profiles:\n" + profiles)


def vmaf(encoded, source, size):
    w, h = size
    tags = "setparams=range=tv:colorspace=bt709:color_primaries=bt709:color_trc=bt709"
    graph = (f"[0:v]{tags},scale={w}:{h}:flags=bicubic,format=yuv420p[d];"
             f"[1:v]{tags},scale={w}:{h}:flags=bicubic,format=yuv420p[r];[d][r]libvmaf=n_threads=2")
    out = subprocess.run([metrics_ffmpeg(), "-hide_banner", "-i", encoded, "-i", source,
                          "-lavfi", graph, "-f", "null", "-"], capture_output=True, text=True)
    for line in out.stderr.splitlines():
        if "VMAF score:" in line:
            return float(line.split("VMAF score:")[1])
    raise RuntimeError(out.stderr[-500:])


def run(wf, src, work):
    state, out = work / "state", work / "out"
    shutil.rmtree(state, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, SPOOL_METRICS_FFMPEG=metrics_ffmpeg())
    t = time.monotonic()
    subprocess.run([SPOOL, "run", "--json", "--workflow", str(wf), "--out", str(out), "--state", str(state),
                    "--concurrency", "2", str(src)], check=True, capture_output=True, env=env)
    wall = time.monotonic() - t
    manifest = json.loads(next(out.glob("*/manifest.json")).read_text())
    return wall, manifest, next(out.glob("*"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--clip", action="append", default=[], help="a real clip to add to the corpus")
    ap.add_argument("--per-title", action="store_true", help="fixed CRF-23 ladder vs ladder: per_title")
    ap.add_argument("--preset", default="veryfast", help="the rungs' x264 preset")
    ap.add_argument("--probe-preset", default="ultrafast", help="the fast-probe variant's probe preset")
    ap.add_argument("--tolerance", type=float, help="the targets' tolerance (VMAF points above the target)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="spool-quality-"))
    sources = {}
    for name, graph in CLIPS.items():
        path = tmp / (name.split()[0] + ".mkv")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", graph.format(d=args.seconds),
                        "-pix_fmt", "yuv420p", "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", str(path)],
                       check=True)
        sources[name] = path
    for c in args.clip:
        sources[Path(c).name] = Path(c)
    tol = f", tolerance: {args.tolerance}" if args.tolerance else ""
    variants = {
        "crf23": ("crf: 23", ""),
        "vmaf93": (f"quality: {{metric: vmaf, target: 93, scope: chunk, scored_at: rung{tol}}}", ""),
        "vmaf93-fastprobe": ("quality: {metric: vmaf, target: 93, scope: chunk, scored_at: rung, "
                             f"probe_preset: {args.probe_preset}}}", ""),
    }
    if args.per_title:
        variants = {"crf23": ("crf: 23", ""), "per_title": ("", "ladder: per_title\n")}
    wfs = {}
    for v, (rung, head) in variants.items():
        wfs[v] = tmp / f"{v}.yaml"
        workflow(wfs[v], rung, head, args.preset)
    totals = {v: {"wall": 0.0, "bytes": 0, "scores": [], "top": []} for v in variants}
    rows = []
    for r in range(args.rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name, src in sources.items():
            for v in order:
                wall, m, out_dir = run(wfs[v], src, tmp / "work")
                scores, nbytes, sizes = [], 0, []
                for o in m["outputs"]:
                    if o["kind"] != "video":
                        continue
                    nbytes += o["bytes"]
                    sizes.append(o["bytes"])
                    if r == 0:
                        size = (o["width"], o["height"])
                        if args.per_title:
                            size = SOURCE_SIZE
                        scores.append(vmaf(str(out_dir / o["path"]), str(src), size))
                crfs = {q["plan"]["name"]: sorted({c["choice"]["crf"] for c in q["chunks"]}) for q in m.get("quality", [])}
                if m.get("per_title"):
                    crfs = {p["profile"]: p["crf"] for p in m["per_title"]["points"] if p["chosen"]}
                totals[v]["wall"] += wall
                if r == 0:
                    totals[v]["bytes"] += nbytes
                    totals[v]["scores"] += scores
                    if scores:
                        best = max(range(len(scores)), key=lambda i: scores[i])
                        totals[v]["top"].append((sizes[best], scores[best]))
                    rows.append((name, v, wall, nbytes, scores, crfs))
                    print(f"{name:22} {v:17} {wall:6.1f} s {nbytes/1e6:7.2f} MB  VMAF per rung "
                          f"{' '.join(f'{s:5.1f}' for s in scores)}  CRFs {crfs}", flush=True)
    base = totals["crf23"]
    print()
    for v, t in totals.items():
        mean = sum(t["scores"]) / max(1, len(t["scores"]))
        print(f"{v:17} wall {t['wall']:7.1f} s ({t['wall']/base['wall']:.2f}x)  bytes {t['bytes']/1e6:7.2f} MB "
              f"({t['bytes']/base['bytes']:.2f}x)  mean VMAF {mean:5.2f}  min {min(t['scores']):5.2f}")
        top_bytes = sum(b for b, _ in t["top"])
        top_score = sum(q for _, q in t["top"]) / max(1, len(t["top"]))
        base_top = sum(b for b, _ in base["top"])
        print(f"{'':17} top rungs {top_bytes/1e6:7.2f} MB ({top_bytes/max(1, base_top):.2f}x), mean VMAF {top_score:5.2f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
