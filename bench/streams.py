#!/usr/bin/env python3
"""What keeping every stream costs, and what tone mapping costs, in one run.

    python3 bench/streams.py [--seconds 20] [--repeat 2]

A. The 1080p five-rung ladder (x264 veryfast) on a source with one audio track, and on the
   same source with a second audio track and an SRT subtitle (both kept by default): the
   ratio of spool's wall times is the cost of keeping them (goal <= 1.10).
B. The same ladder on a 1080p HDR10 source (10-bit HEVC, PQ) against its SDR twin (8-bit
   H.264 of the same picture): the H.264 rungs are tone-mapped (zscale + tonemap, once per
   chunk before the split), so the ratio is the tone-mapping cost (decode included).
Runs alternate between the two sides of each comparison; the best of --repeat is compared.
"""
import argparse, json, os, shutil, subprocess, time
from pathlib import Path

from spool_run import run_spool

RUNGS = [240, 360, 480, 720, 1080]


def sh(argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def workflow(path):
    lines = ["version: 1", "name: bench-streams",
             "chunking: {segment_seconds: 4, min_duration_seconds: 0}",
             "encode: {mode: ladder, keyframe_interval_seconds: 2}", "profiles:"]
    lines += [f"- {{name: h264-{h}p, codec: h264, height: {h}, preset: veryfast}}" for h in RUNGS]
    path.write_text("\n".join(lines) + "\n")


def sources(d, seconds):
    v = ["-f", "lavfi", "-i", f"testsrc2=s=1920x1080:r=25:d={seconds}"]
    tone = lambda hz: ["-f", "lavfi", "-i", f"sine=f={hz}:d={seconds}:r=48000"]
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-g", "50", "-pix_fmt", "yuv420p"]
    one = d / "one-track.mkv"
    sh(["ffmpeg", "-y", *v, *tone(440), "-map", "0", "-map", "1", *x264, "-c:a", "aac", str(one)])
    srt = d / "subs.srt"
    srt.write_text("".join(f"{i+1}\n00:00:{i:02d},000 --> 00:00:{i:02d},800\nLine {i}\n\n" for i in range(0, min(seconds, 59), 2)))
    more = d / "two-tracks-and-subs.mkv"
    sh(["ffmpeg", "-y", "-i", str(one), *tone(660), "-i", str(srt), "-map", "0", "-map", "1", "-map", "2",
        "-c:v", "copy", "-c:a:0", "copy", "-c:a:1", "aac", "-c:s", "copy",
        "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra", str(more)])
    hdr = d / "hdr10.mkv"
    # Closed GOPs: open-GOP HEVC loses its leading pictures when cut (issue 18).
    params = ("log-level=error:keyint=50:open-gop=0:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:"
              "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1):max-cll=1000,400")
    sh(["ffmpeg", "-y", *v, *tone(440), "-map", "0", "-map", "1", "-vf", "format=yuv420p10le",
        "-c:v", "libx265", "-preset", "ultrafast", "-crf", "18", "-x265-params", params,
        "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc", "-c:a", "aac", str(hdr)])
    return one, more, hdr


def compare(spool, wf, a, b, root, repeat, label):
    times = {a: [], b: []}
    for r in range(repeat):
        for src in ([a, b] if r % 2 == 0 else [b, a]):
            times[src].append(run_spool(spool, src, root / src.stem, wf)[0])
            print(f"  {label} round {r+1}: {src.name}: {times[src][-1]:.2f} s", flush=True)
    best_a, best_b = min(times[a]), min(times[b])
    return best_a, best_b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--spool", default=os.environ.get("SPOOL_BIN", "target/release/spool"))
    ap.add_argument("--dir", default="/tmp/spool-bench-streams")
    args = ap.parse_args()
    d = Path(args.dir)
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    wf = d / "ladder.yaml"
    workflow(wf)
    one, more, hdr = sources(d, args.seconds)
    print(f"sources: {args.seconds} s of 1920x1080 25 fps; ladder {RUNGS}, x264 veryfast")
    a, b = compare(args.spool, wf, one, more, d / "runs", args.repeat, "A")
    print(f"A. one track {a:.2f} s, two tracks + subtitle {b:.2f} s: ratio {b / a:.3f} (goal <= 1.10)")
    # The SDR twin of the HDR source: the same picture as 8-bit H.264, so only the decode and
    # the tone map differ.
    sdr = d / "sdr-twin.mkv"
    sh(["ffmpeg", "-y", "-i", str(hdr), "-map", "0", "-vf", "format=yuv420p", "-c:v", "libx264",
        "-preset", "ultrafast", "-crf", "18", "-g", "50", "-color_primaries", "bt709",
        "-color_trc", "bt709", "-colorspace", "bt709", "-c:a", "copy", str(sdr)])
    s, h = compare(args.spool, wf, sdr, hdr, d / "runs", args.repeat, "B")
    print(f"B. SDR twin {s:.2f} s, HDR10 tone-mapped {h:.2f} s: ratio {h / s:.3f}")
    # The tone map alone, one 1080p decode through the chain vs the decode alone.
    chain = ("zscale=tin=smpte2084:pin=bt2020:min=bt2020nc:rin=tv:t=linear:npl=100,format=gbrpf32le,"
             "zscale=p=bt709,tonemap=tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p")
    def decode(vf):
        os.sync()
        t = time.monotonic()
        sh(["ffmpeg", "-y", "-i", str(hdr), "-an", "-vf", vf, "-f", "null", "-"])
        return time.monotonic() - t
    plain, mapped = decode("format=yuv420p"), decode(chain)
    frames = args.seconds * 25
    print(f"   the chain alone at 1080p: {frames / mapped:.1f} fps ({mapped:.2f} s) vs decode only "
          f"{frames / plain:.1f} fps ({plain:.2f} s)")


if __name__ == "__main__":
    main()
