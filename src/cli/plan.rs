//! `spool plan`: prints what a run would do, as text or JSON.

use std::path::Path;

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Result;

use spool::engine::plan::chunks::ChunkMethod;
use spool::engine::plan_input;
use spool::media::tools::Tools;
use spool::workflow::LoadedWorkflow;

/// Exit 0 with the plan; 1 when the input cannot be planned (not media, a hook failed).
pub async fn plan(input: &Path, wf: &LoadedWorkflow, out: &Path, json: bool) -> Result<u8> {
    let tools = Tools::locate().await?;
    // A scratch work directory: hooks and the argv checks need real paths.
    let work = tempfile::Builder::new().prefix("spool-plan-").tempdir()?;
    let report = match plan_input(&tools, wf, input, out, work.path()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("spool plan: {e}");
            return Ok(1);
        }
    };
    let mut text = String::new();
    if json {
        text = serde_json::to_string_pretty(&report)?;
        text.push('\n');
        return emit(&text);
    }
    let _ = writeln!(text, "input:    {}", report.input);
    let _ = writeln!(
        text,
        "workflow: {} ({})",
        report.workflow,
        &report.workflow_hash[..12.min(report.workflow_hash.len())]
    );
    if let Some(reason) = &report.skip {
        let _ = writeln!(text, "skip:     {reason}");
        return emit(&text);
    }
    let _ = writeln!(text, "rungs:    {}", report.rungs.join(", "));
    for s in &report.skipped_rungs {
        let _ = writeln!(text, "  not encoded: {s}");
    }
    let c = &report.chunking;
    match c.method {
        ChunkMethod::Whole => {
            let _ = writeln!(text, "chunks:   none, whole file ({})", c.why);
        }
        method => {
            let _ = writeln!(
                text,
                "chunks:   {} by {} ({})",
                report.chunks,
                serde_json::to_value(method)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                c.why
            );
            let starts: Vec<String> = c.starts.iter().map(|s| format!("{s:.3}")).collect();
            let _ = writeln!(text, "  starts at: {}", starts.join(" "));
            if c.preroll_frames > 0 {
                let _ = writeln!(
                    text,
                    "  pre-roll: {} frames decoded only to reach chunk starts",
                    c.preroll_frames
                );
            }
        }
    }
    let _ = writeln!(text, "picture:  {}", picture_line(&report.picture));
    for (track, l) in &report.loudness {
        let _ = writeln!(
            text,
            "  loudness: audio track {track} measured {:.1} LUFS, true peak {:.1} dBTP",
            l.integrated, l.true_peak
        );
    }
    for q in &report.quality {
        let _ = writeln!(text, "quality:  {}", q.describe());
    }
    if let Some(ladder) = &report.ladder {
        let _ = writeln!(text, "ladder:   {}", ladder.describe());
        let _ = writeln!(
            text,
            "          (the encodes below are the candidates at their own settings; a run encodes the rungs the hull chooses, at their CRFs)"
        );
    }
    if !report.quality.is_empty() {
        let _ = writeln!(
            text,
            "          (the encode commands below show each search's starting CRF; a run uses the one it chooses)"
        );
    }
    for n in &report.notes {
        let _ = writeln!(text, "  note: {n}");
    }
    let _ = writeln!(text, "outputs:  {}", report.outputs.join(", "));
    for d in &report.dropped {
        let _ = writeln!(
            text,
            "  dropped: stream {} ({} {}{}){}: {}",
            d.stream,
            d.kind,
            d.codec,
            d.language
                .as_ref()
                .map(|l| format!(", {l}"))
                .unwrap_or_default(),
            d.output
                .as_ref()
                .map(|o| format!(" from {o}"))
                .unwrap_or_default(),
            d.reason
        );
    }
    let _ = writeln!(
        text,
        "work dir: {} (a run uses <state>/work/<job>)",
        report.work_dir
    );
    for c in &report.commands {
        let _ = writeln!(text, "\n[{}] {}", c.phase, c.label);
        let _ = writeln!(text, "  {}", shell_words(&c.argv));
    }
    emit(&text)
}

/// Writes the plan; a closed pipe (`spool plan x | head`) is not an error.
fn emit(text: &str) -> Result<u8> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Quotes arguments so the printed line can be pasted into a POSIX shell.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The picture decision in words: what is done before the rungs scale.
fn picture_line(p: &spool::media::picture::Picture) -> String {
    let mut parts = Vec::new();
    if let Some(rate) = p.deinterlace {
        parts.push(format!("deinterlaced (bwdif, {rate:?} rate)").to_lowercase());
    }
    if let Some(c) = p.crop {
        parts.push(format!(
            "cropped to {}x{} at {},{} (black borders found across the file)",
            c.width, c.height, c.x, c.y
        ));
    }
    if p.turn != 0 {
        parts.push(format!("turned {}° clockwise to stand upright", p.turn));
    }
    if p.keep_rotation != 0 {
        parts.push(format!(
            "kept as stored, flagged to turn {}° on display",
            p.keep_rotation
        ));
    }
    if parts.is_empty() {
        "as the source".into()
    } else {
        parts.join("; ")
    }
}
