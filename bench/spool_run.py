"""One timed `spool run --json`, shared by the benchmarks."""
import json, os, shutil, subprocess, time


def run_spool(spool, src, root, wf=None, fresh=True):
    """Runs `spool run --json` of `src` with outputs and state under `root` (emptied first
    when `fresh`); checks the job succeeded; returns (wall seconds, the job's result)."""
    if fresh:
        shutil.rmtree(root, ignore_errors=True)
    argv = [spool, "run", "--json", "--out", str(root / "out"), "--state", str(root / "state")]
    if wf is not None:
        argv += ["--workflow", str(wf)]
    argv.append(str(src))
    os.sync()
    t = time.monotonic()
    p = subprocess.run(argv, check=True, capture_output=True, text=True,
                       env={**os.environ, "SPOOL_LOG": "spool=warn"})
    elapsed = time.monotonic() - t
    out = json.loads(p.stdout.splitlines()[-1])
    assert out.get("status") == "succeeded", out
    return elapsed, out
