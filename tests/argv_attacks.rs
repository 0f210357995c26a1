//! Scripts that try to make ffmpeg read or write outside the job, each the way a parser
//! might misread: encoder parameters that name files, a positional stats file, quoted and
//! escaped filter names and keys, a filter option the parser does not know to be a file,
//! a lua step replacing a verified output, a plan of 100,000 rungs. Refused by the parser
//! where it can tell, by the kernel (Landlock) where it cannot.

mod common;

use std::path::Path;

use common::*;

/// before_task inserts, after `libx264`, the options named by the file.
const TAMPER: &str = r#"local M = {}
local function attacks(outside)
  local extra = {
  dumpyuv = { "-x264-params", "dump-yuv=" .. outside .. "/dump.yuv" },
  stats = { "-x264-params", "pass=1:stats=" .. outside .. "/stats.log" },
  psnr = { "-vf", "split[a][b];[a][b]psnr=" .. outside .. "/psnr.log,scale=-2:144" },
  textfile = { "-vf", "scale=-2:144,drawtext='textfile=" .. outside .. "/secret.txt'" },
  movie = { "-vf", "'movie'=" .. outside .. "/secret.mkv[m];[in][m]overlay,scale=-2:144" },
  escaped = { "-vf", "mov\\ie=" .. outside .. "/secret.mkv[m];[in][m]overlay,scale=-2:144" },
  findrect = { "-vf", "scale=-2:144,find_rect=object=secret.pgm" },
  huge = {},
  }
  for i = 1, 5000 do extra.huge[i] = "-an" end
  return extra
end
function M.before_task(task, argv)
  local kind = spool.job.input:match("([%a]+)%.mp4$")
  local add = attacks(spool.params.outside)[kind]
  if not add then return nil end
  local out = {}
  for _, a in ipairs(argv) do
    out[#out + 1] = a
    if a == "libx264" then
      for _, x in ipairs(add) do out[#out + 1] = x end
    end
  end
  return { argv = out }
end
return M
"#;

fn tamper_workflow(dir: &Path) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    std::fs::write(dir.join("tamper.lua"), TAMPER)?;
    let outside = dir.join("outside");
    Ok(write_workflow(
        dir,
        "tamper",
        &format!(
            "script: {{path: tamper.lua, hooks: [before_task], params: {{outside: {}}}}}\n\
             profiles:\n- {{name: p144, codec: h264, height: 144, preset: ultrafast}}\n",
            outside.display()
        ),
    )?)
}

#[test]
fn scripts_cannot_make_ffmpeg_touch_files_outside_the_job() -> TestResult {
    let dir = tempfile::tempdir()?;
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside)?;
    std::fs::write(outside.join("secret.txt"), "the secret")?;
    let wf = tamper_workflow(dir.path())?;
    let clip = dir.path().join("source.mkv");
    make_clip(&clip, "256x144", 25, 1, Audio::None)?;
    // (file, the words its failure must contain; None: it must succeed)
    let cases: [(&str, Option<&str>); 8] = [
        ("plain.mp4", None),
        ("dumpyuv.mp4", Some("parameter dump-yuv")),
        ("stats.mp4", Some("parameter stats")),
        ("psnr.mp4", Some("positional value")),
        ("textfile.mp4", Some("option textfile")),
        ("movie.mp4", Some("filter movie opens files")),
        ("escaped.mp4", Some("filter movie opens files")),
        ("huge.mp4", Some("too large")),
    ];
    let inputs: Vec<std::path::PathBuf> = cases
        .iter()
        .map(|(name, _)| {
            let p = dir.path().join(name);
            std::fs::copy(&clip, &p).map(|_| p)
        })
        .collect::<Result<_, _>>()?;
    let run = spool()
        .args(["run", "--json", "--workflow"])
        .arg(&wf)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--state")
        .arg(dir.path().join("state"))
        .args(&inputs)
        .assert()
        .code(1);
    let results = outcomes(&run.get_output().stdout);
    let mut wrong = Vec::new();
    for ((name, expect), r) in cases.iter().zip(&results) {
        let (status, reason) = (
            r["status"].as_str().unwrap_or(""),
            r["reason"].as_str().unwrap_or(""),
        );
        match expect {
            None if status != "succeeded" => wrong.push(format!("{name}: {status} {reason}")),
            Some(w) if status != "failed" || !reason.contains(w) => {
                wrong.push(format!("{name}: expected {w:?}, got {status} {reason:?}"))
            }
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    let written: Vec<_> = std::fs::read_dir(&outside)?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(written, ["secret.txt"], "nothing was written outside");
    Ok(())
}

/// `find_rect=object=secret.pgm` names a file the parser does not know as one, relative to
/// the working directory: the parser lets it through; the kernel does not.
#[test]
fn what_the_parser_misses_the_kernel_refuses() -> TestResult {
    let dir = tempfile::tempdir()?;
    let wf = tamper_workflow(dir.path())?;
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=gray:s=16x16",
        "-frames:v",
        "1",
        "-pix_fmt",
        "gray",
        &dir.path().join("secret.pgm").display().to_string(),
    ])?;
    let src = dir.path().join("findrect.mp4");
    make_clip(&src, "256x144", 25, 1, Audio::None)?;
    let run = |confine: &str, out: &str| {
        spool()
            .env("SPOOL_CONFINE", confine)
            .current_dir(dir.path())
            .args(["run", "--json", "--workflow"])
            .arg(&wf)
            .arg("--out")
            .arg(dir.path().join(out))
            .arg("--state")
            .arg(dir.path().join(format!("state-{out}")))
            .arg(&src)
            .assert()
    };
    // Confined (spool itself is the launcher): the read is refused, the job fails.
    let confined = outcomes(
        &run(&spool_path().display().to_string(), "a")
            .code(1)
            .get_output()
            .stdout,
    );
    let reason = confined[0]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("Permission denied"), "{reason}");
    // Unconfined, the same job reads the file: only the kernel stopped it.
    let open = outcomes(&run("off", "b").success().get_output().stdout);
    assert_eq!(open[0]["status"], "succeeded", "{open:?}");
    Ok(())
}

#[test]
fn the_launcher_confines_what_it_starts() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (jail, outside) = (dir.path().join("jail"), dir.path().join("outside"));
    std::fs::create_dir_all(&jail)?;
    std::fs::create_dir_all(&outside)?;
    let launcher = spool_path();
    let confined = |args: &[String]| {
        std::process::Command::new(&launcher)
            .args(["__confine", "--write"])
            .arg(&jail)
            .args([
                "--",
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=d=1:s=64x64",
            ])
            .args(args)
            .output()
    };
    let inside = confined(&[jail.join("ok.mp4").display().to_string()])?;
    assert!(
        inside.status.success(),
        "{}",
        String::from_utf8_lossy(&inside.stderr)
    );
    let out = confined(&[outside.join("no.mp4").display().to_string()])?;
    assert!(!out.status.success() && !outside.join("no.mp4").exists());
    let net = confined(&["-f".into(), "mpegts".into(), "tcp://127.0.0.1:9".into()])?;
    assert!(String::from_utf8_lossy(&net.stderr).contains("Permission denied"));
    Ok(())
}

#[test]
fn a_step_cannot_replace_a_verified_output_and_plans_are_capped() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("steps.lua"),
        "local M = {}\nfunction M.swap(ctx)\n\
         spool.fs.write('c.p144.mp4', 'not a video')\n\
         return { outputs = { { path = 'c.p144.mp4' } } }\nend\n\
         function M.plan(media, plan)\n\
         local p = plan.profiles[1]\n\
         for i = 1, 100000 do plan.profiles[i] = { name = 'r' .. i, codec = 'h264', height = 144 } end\n\
         return plan\nend\nreturn M\n",
    )?;
    let src = dir.path().join("c.mp4");
    make_clip(&src, "256x144", 25, 1, Audio::None)?;
    let swap = write_workflow(
        dir.path(),
        "swap",
        "script: {path: steps.lua, hooks: []}\nsteps:\n- lua: {function: swap}\n",
    )?;
    let out = outcomes(
        &spool()
            .args(["run", "--json", "--workflow"])
            .arg(&swap)
            .arg("--out")
            .arg(dir.path().join("o"))
            .arg("--state")
            .arg(dir.path().join("s"))
            .arg(&src)
            .assert()
            .code(1)
            .get_output()
            .stdout,
    );
    let reason = out[0]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("already published"), "{reason}");
    // The verified output is still the video.
    let published = dir.path().join("o/c/c.p144.mp4");
    assert_eq!(
        probe_value(&published, "v:0", "nb_read_packets"),
        Some(25.0)
    );
    let huge = write_workflow(
        dir.path(),
        "huge",
        "script: {path: steps.lua, hooks: [plan]}\n",
    )?;
    let out = outcomes(
        &spool()
            .args(["run", "--json", "--workflow"])
            .arg(&huge)
            .arg("--out")
            .arg(dir.path().join("o2"))
            .arg("--state")
            .arg(dir.path().join("s2"))
            .arg(&src)
            .assert()
            .code(1)
            .get_output()
            .stdout,
    );
    let reason = out[0]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("100000 profiles; at most 32"), "{reason}");
    Ok(())
}

/// The rule: structured edits that spool renders and quotes itself, checked like any argv.
#[test]
fn structured_edits_reach_the_encoder_and_hostile_values_stay_values() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("edits.lua"),
        r#"local M = {}
function M.before_task(task, argv)
  return {
    options = { ["-tune"] = "film" },
    encoder_params = { ["aq-mode"] = 3 },
    filters = {
      { name = "eq", args = { contrast = 1.2 } },
      -- A value full of ffmpeg's separators stays one value.
      { name = "metadata", args = { mode = "add", key = "k", value = "a'b:c,d;e[f]g\\h=i,movie=/etc/x" } },
    },
  }
end
return M
"#,
    )?;
    let wf = write_workflow(
        dir.path(),
        "edits",
        "script: {path: edits.lua, hooks: [before_task]}\n",
    )?;
    let src = dir.path().join("c.mp4");
    make_clip(&src, "256x144", 25, 2, Audio::None)?;
    run_succeeds(&wf, dir.path(), &src)?;
    // The 144p rung (the others are taller than the source).
    let bytes = std::fs::read(dir.path().join("out/c/c.p144.mp4"))?;
    let settings = String::from_utf8_lossy(&bytes);
    assert!(settings.contains(" aq=3:"), "aq-mode=3 did not reach x264");
    assert!(
        settings.contains("psy_rd=1.00:0.15"),
        "-tune film did not reach x264"
    );
    // Both at once is refused.
    std::fs::write(
        dir.path().join("both.lua"),
        "local M = {}\nfunction M.before_task(t, argv) return { argv = argv, options = { ['-tune'] = 'film' } } end\nreturn M\n",
    )?;
    let both = write_workflow(
        dir.path(),
        "both",
        "script: {path: both.lua, hooks: [before_task]}\n",
    )?;
    let out = outcomes(
        &spool()
            .args(["run", "--json", "--workflow"])
            .arg(&both)
            .arg("--out")
            .arg(dir.path().join("o2"))
            .arg("--state")
            .arg(dir.path().join("s2"))
            .arg(&src)
            .assert()
            .code(1)
            .get_output()
            .stdout,
    );
    assert!(
        out[0]["reason"].as_str().unwrap_or("").contains("not both"),
        "{out:?}"
    );
    Ok(())
}
