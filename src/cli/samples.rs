//! `spool gif` and `spool demo`'s sample clip: single ffmpeg runs outside any job.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use spool::media::colour::sdr_preview_chain;
use spool::media::command::gif_args;
use spool::media::probe::probe;
use spool::media::run::run_ffmpeg;
use spool::media::thumbs::Preview;
use spool::media::tools::Tools;

use super::EXIT_FAILED;

pub async fn gif(
    input: &Path,
    out: Option<PathBuf>,
    width: u32,
    fps: u32,
    start: f64,
    duration: f64,
) -> Result<u8> {
    let tools = Tools::locate().await?;
    let media = probe(&tools, input).await?;
    let start = start.min(media.duration * 0.2).max(0.0);
    let length = duration.min(media.duration - start).max(0.1);
    let out = out.unwrap_or_else(|| input.with_extension("gif"));
    // An HDR source is shown as SDR, as the ladder's H.264 rungs show it.
    let sdr = media
        .video
        .as_ref()
        .and_then(|v| sdr_preview_chain(&v.colour));
    let preview = Preview {
        noautorotate: false,
        filters: sdr.map(|c| format!("{c},")).unwrap_or_default(),
    };
    let argv = gif_args(
        input,
        start,
        length,
        width.clamp(16, 1920),
        fps.clamp(1, 30),
        &out,
        &preview,
    );
    match run_ffmpeg(&tools, &argv, &CancellationToken::new(), |_| {}).await {
        Ok(_) => {
            println!("{}", out.display());
            Ok(0)
        }
        Err(e) => {
            eprintln!("spool: gif failed: {e}");
            Ok(EXIT_FAILED)
        }
    }
}

pub async fn make_demo_clip(out: &Path) -> Result<PathBuf> {
    let tools = Tools::locate().await?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let clip = out.join("demo-source.mp4");
    if clip.is_file() {
        return Ok(clip);
    }
    eprintln!("making a 24 s sample clip at {}", clip.display());
    let argv = spool::media::tools::os_args([
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=640x360:r=25:d=24",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:sample_rate=48000:d=24",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        "50",
        "-c:a",
        "aac",
        "-shortest",
    ])
    .into_iter()
    .chain([clip.as_os_str().to_owned()])
    .collect::<Vec<_>>();
    run_ffmpeg(&tools, &argv, &CancellationToken::new(), |_| {})
        .await
        .context("making the demo clip")?;
    Ok(clip)
}
