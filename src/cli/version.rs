//! `spool --version`: what this spool is and what it will run.

use spool::confine::{detect_launcher, Enforcement};
use spool::media::tools::Tools;

/// Prints the version, the ffmpeg found (path and version), the features built in and how
/// ffmpeg is confined. Exit 1 when no ffmpeg is found (spool cannot work without it).
pub async fn print() -> u8 {
    println!("spool {}", env!("CARGO_PKG_VERSION"));
    let code = match Tools::locate().await {
        Ok(t) => {
            println!("ffmpeg: {} ({})", t.ffmpeg.display(), t.version);
            println!("ffprobe: {}", t.ffprobe.display());
            0
        }
        Err(e) => {
            println!("ffmpeg: not usable: {e}");
            1
        }
    };
    let yes_no = |on: bool| if on { "yes" } else { "no" };
    println!(
        "features: whisper (in-process CTranslate2 transcription): {}; vmaf: no (not built)",
        yes_no(cfg!(feature = "whisper"))
    );
    if cfg!(feature = "whisper") {
        // Set by build.rs when the prebuilt library of the ctranslate2 wheel is linked.
        match option_env!("SPOOL_CT2_LIBRARY") {
            Some(lib) => println!("CTranslate2: prebuilt, {lib}"),
            None => println!("CTranslate2: compiled from source (ct2-source)"),
        }
    }
    let confinement = match detect_launcher() {
        Some((_, Enforcement::Full)) => "Landlock, full",
        Some((_, Enforcement::Partial)) => "Landlock, partial (this kernel's ABI)",
        None => "none (no Landlock here, or SPOOL_CONFINE=off)",
    };
    println!("ffmpeg confinement: {confinement}");
    code
}
