//! The serialisable encode task: what to encode (a chunk named by its content), into which
//! rungs, how many frames must come out, and the ffmpeg commands as templates whose input,
//! outputs, pass logs and work directory are placeholders each executor fills in with its
//! own paths. Nothing in it is specific to the machine that made it.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::exec::Priority;
use crate::media::hash::FileDigest;
use crate::media::profiles::Rung;
use crate::store::TaskId;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncodeTask {
    pub id: TaskId,
    pub label: String,
    /// The content to encode: a chunk's (or the whole source's) digest.
    pub input: FileDigest,
    pub rungs: Vec<TaskRung>,
    /// Frames each output must hold.
    pub expected_frames: u64,
    /// Run in order (two for 2-pass).
    pub commands: Vec<ArgvTemplate>,
    pub priority: Priority,
    /// The workflow whose schedule gates this task.
    pub gate: String,
    /// Where the coordinator holds the input and the job's work directory; an executor on
    /// the same machine uses them, another one fetches the input by its digest.
    pub local: LocalPaths,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRung {
    pub rung: Rung,
    /// Fingerprint of everything but the chunk and the ffmpeg that decides the output
    /// (the rung's settings and any change a hook made); the executor adds its ffmpeg.
    pub settings: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalPaths {
    pub input: PathBuf,
    pub work: PathBuf,
}

/// Where a task's encoder writes one rung, and its 2-pass statistics prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputPaths {
    pub path: PathBuf,
    pub passlog: PathBuf,
}

impl OutputPaths {
    /// Named by task and rung inside `work/enc`, the same for the planner and executors.
    pub fn of(work: &Path, task: u32, rung: &Rung) -> OutputPaths {
        let stem = format!("t{task:05}-{}", rung.name);
        let enc = work.join("enc");
        OutputPaths {
            path: enc.join(format!("{stem}.{}", rung.chunk_ext())),
            passlog: enc.join(format!("{stem}-pass")),
        }
    }
}

/// One argument: literal pieces and placeholders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArgTemplate(pub Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Piece {
    Text(String),
    /// Literal bytes that are not UTF-8 (Unix file names need not be).
    Bytes(Vec<u8>),
    Input,
    Output(usize),
    Passlog(usize),
    Work,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArgvTemplate(pub Vec<ArgTemplate>);

/// The concrete paths a template is filled with.
pub struct Bindings<'a> {
    pub input: &'a Path,
    pub work: &'a Path,
    pub outputs: &'a [OutputPaths],
}

impl Bindings<'_> {
    /// (bytes, placeholder), longest first, so a path inside the work directory becomes
    /// its own placeholder rather than `{work}` plus a tail.
    fn patterns(&self) -> Vec<(Vec<u8>, Piece)> {
        let mut p: Vec<(Vec<u8>, Piece)> = vec![
            (bytes(self.input), Piece::Input),
            (bytes(self.work), Piece::Work),
        ];
        for (i, o) in self.outputs.iter().enumerate() {
            p.push((bytes(&o.path), Piece::Output(i)));
            p.push((bytes(&o.passlog), Piece::Passlog(i)));
        }
        p.retain(|(b, _)| !b.is_empty());
        p.sort_by_key(|(b, _)| std::cmp::Reverse(b.len()));
        p
    }

    fn value(&self, piece: &Piece) -> Option<&Path> {
        match piece {
            Piece::Input => Some(self.input),
            Piece::Work => Some(self.work),
            Piece::Output(i) => self.outputs.get(*i).map(|o| o.path.as_path()),
            Piece::Passlog(i) => self.outputs.get(*i).map(|o| o.passlog.as_path()),
            Piece::Text(_) | Piece::Bytes(_) => None,
        }
    }
}

fn bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

#[derive(Debug, thiserror::Error)]
#[error("the task's command names output {0}, which the task does not have")]
pub struct RenderError(usize);

impl ArgvTemplate {
    /// Turns a concrete argv into a template: every occurrence of a bound path becomes
    /// its placeholder.
    pub fn from_argv(argv: &[OsString], bound: &Bindings<'_>) -> ArgvTemplate {
        let patterns = bound.patterns();
        ArgvTemplate(
            argv.iter()
                .map(|a| template_arg(a.as_bytes(), &patterns))
                .collect(),
        )
    }

    /// Fills the placeholders with `bound`'s paths.
    pub fn render(&self, bound: &Bindings<'_>) -> Result<Vec<OsString>, RenderError> {
        self.0
            .iter()
            .map(|arg| {
                let mut out: Vec<u8> = Vec::new();
                for piece in &arg.0 {
                    match piece {
                        Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
                        Piece::Bytes(b) => out.extend_from_slice(b),
                        Piece::Output(i) | Piece::Passlog(i) if bound.value(piece).is_none() => {
                            return Err(RenderError(*i))
                        }
                        p => out.extend_from_slice(
                            bound.value(p).map(bytes).unwrap_or_default().as_slice(),
                        ),
                    }
                }
                Ok(OsString::from_vec(out))
            })
            .collect()
    }
}

fn template_arg(arg: &[u8], patterns: &[(Vec<u8>, Piece)]) -> ArgTemplate {
    let mut pieces = Vec::new();
    let mut literal: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < arg.len() {
        let hit = patterns
            .iter()
            .find(|(p, _)| arg[i..].starts_with(p.as_slice()));
        match hit {
            Some((p, piece)) => {
                flush_literal(&mut literal, &mut pieces);
                pieces.push(piece.clone());
                i += p.len();
            }
            None => {
                literal.push(arg[i]);
                i += 1;
            }
        }
    }
    flush_literal(&mut literal, &mut pieces);
    ArgTemplate(pieces)
}

fn flush_literal(literal: &mut Vec<u8>, pieces: &mut Vec<Piece>) {
    if literal.is_empty() {
        return;
    }
    let taken = std::mem::take(literal);
    pieces.push(match String::from_utf8(taken) {
        Ok(s) => Piece::Text(s),
        Err(e) => Piece::Bytes(e.into_bytes()),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn a_template_renders_back_to_the_argv_and_onto_other_paths() -> Result<(), RenderError> {
        let input = PathBuf::from(std::ffi::OsStr::from_bytes(b"/src/caf\xe9 clip.mp4"));
        let work = PathBuf::from("/state/work/abc");
        let outputs = vec![OutputPaths {
            path: work.join("enc/t00001-p240.mp4"),
            passlog: work.join("enc/t00001-p240-pass"),
        }];
        let here = Bindings {
            input: &input,
            work: &work,
            outputs: &outputs,
        };
        let mut file_input = OsString::from("file:");
        file_input.push(&input);
        let argv: Vec<OsString> = vec![
            "-i".into(),
            file_input,
            "-x265-params".into(),
            format!("pass=1:stats={}", outputs[0].passlog.display()).into(),
            work.join("extra.log").into(),
            outputs[0].path.clone().into(),
        ];
        let t = ArgvTemplate::from_argv(&argv, &here);
        assert_eq!(t.0[1].0, [Piece::Text("file:".into()), Piece::Input]);
        assert_eq!(t.0[3].0[1], Piece::Passlog(0));
        assert_eq!(t.0[4].0[0], Piece::Work);
        assert_eq!(t.0[5].0, [Piece::Output(0)]);
        assert_eq!(
            t.render(&here)?,
            argv,
            "rendering with the same paths is exact"
        );
        // Serialised and sent elsewhere, it renders with that machine's paths.
        let json = serde_json::to_string(&t).unwrap_or_default();
        let back: ArgvTemplate = serde_json::from_str(&json).unwrap_or(ArgvTemplate(vec![]));
        let there_work = PathBuf::from("/w2");
        let there_out = vec![OutputPaths::of(
            &there_work,
            1,
            &crate::media::profiles::sample_rung("p240", 240),
        )];
        let there = Bindings {
            input: Path::new("/cache/chunk.mkv"),
            work: &there_work,
            outputs: &there_out,
        };
        let rendered = back.render(&there)?;
        assert_eq!(rendered[1], OsString::from("file:/cache/chunk.mkv"));
        assert_eq!(rendered[5], OsString::from("/w2/enc/t00001-p240.mp4"));
        assert!(back
            .render(&Bindings {
                outputs: &[],
                ..there
            })
            .is_err());
        Ok(())
    }
}
