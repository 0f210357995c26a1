//! Checks an ffmpeg argv that a script wrote or changed: it may only read the job's files,
//! only write inside the job's work directory, and only use options from an allow-list.
//! Options spool itself generated (present in the original argv) are always kept. Filter
//! graphs and encoder parameters are read with ffmpeg's own quoting rules (`tokens`).
//! This is the first line; the kernel (Landlock, see `media::confine`) is the one that
//! holds whatever a parser misreads.

mod tables;
pub mod tokens;

use tables::{
    ALLOWED, ENCODER_FILE_KEYS, EXPRESSION_FILTERS, FILE_FILTERS, FILE_KEYS, FLAGS, FORMATS,
};

use std::path::{Path, PathBuf};

/// Where a checked argv may read and write.
#[derive(Debug, Clone)]
pub struct ArgvRules {
    /// Files and directories it may read (the input, the job's directories).
    pub readable: Vec<PathBuf>,
    /// The one directory it may write into.
    pub writable: PathBuf,
}

/// What a script's argv may weigh at most.
pub const MAX_ARGS: usize = 4096;
pub const MAX_ARG_BYTES: usize = 64 << 10;
pub const MAX_ARGV_BYTES: usize = 1 << 20;

fn base_name(option: &str) -> &str {
    option.split(':').next().unwrap_or(option)
}

/// Checks `proposed` against `original`. Returns every problem, or Ok.
pub fn check_argv(
    original: &[String],
    proposed: &[String],
    rules: &ArgvRules,
) -> Result<(), String> {
    let size: usize = proposed.iter().map(String::len).sum();
    if proposed.len() > MAX_ARGS
        || size > MAX_ARGV_BYTES
        || proposed.iter().any(|a| a.len() > MAX_ARG_BYTES)
    {
        return Err(format!(
            "the argv is too large ({} arguments, {size} bytes; at most {MAX_ARGS} arguments of {MAX_ARG_BYTES} bytes, {MAX_ARGV_BYTES} in all)",
            proposed.len()
        ));
    }
    let mut problems = Vec::new();
    let known: Vec<(&str, Option<&str>)> =
        pairs(original).into_iter().map(|p| (p.0, p.1)).collect();
    let mut outputs = 0;
    for (option, value) in pairs(proposed) {
        let ours = known.contains(&(option, value));
        match (option, value) {
            ("", Some(path)) => {
                outputs += 1;
                if let Err(e) = check_path(path, false, rules, original) {
                    problems.push(format!("output {path:?}: {e}"));
                }
            }
            (o, v) if !ours => {
                if !ALLOWED.contains(&base_name(o)) {
                    problems.push(format!("option {o} is not on the allow-list"));
                    continue;
                }
                let v = v.unwrap_or("");
                match base_name(o) {
                    "-i" => {
                        if let Err(e) = check_path(v, true, rules, original) {
                            problems.push(format!("input {v:?}: {e}"));
                        }
                    }
                    "-f" if !FORMATS.contains(&v) => {
                        problems.push(format!("format {v:?} is not on the allow-list"))
                    }
                    "-vf" | "-af" | "-filter" | "-filter_complex" | "-lavfi" => {
                        for e in graph_problems(v, rules, original) {
                            problems.push(format!("{o} {v:?}: {e}"));
                        }
                    }
                    "-x264-params" | "-x265-params" | "-svtav1-params" => {
                        for e in encoder_problems(v, rules, original) {
                            problems.push(format!("{o} {v:?}: {e}"));
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if outputs == 0 {
        problems.push("the argv has no output file".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// (option, value) pairs in order; outputs are ("", Some(path)).
fn pairs(argv: &[String]) -> Vec<(&str, Option<&str>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let a = argv[i].as_str();
        if a.starts_with('-') && a.len() > 1 {
            if FLAGS.contains(&a) {
                out.push((a, None));
                i += 1;
            } else {
                out.push((a, argv.get(i + 1).map(String::as_str)));
                i += 2;
            }
        } else {
            out.push(("", Some(a)));
            i += 1;
        }
    }
    out
}

/// A path must be a plain file (or `file:` URL), absolute, with no `..`, inside the rules.
fn check_path(
    given: &str,
    read: bool,
    rules: &ArgvRules,
    original: &[String],
) -> Result<(), String> {
    if read && original.iter().any(|a| a == given) {
        return Ok(());
    }
    let path = given.strip_prefix("file:").unwrap_or(given);
    let scheme = path.split_once(':').map(|(s, _)| s);
    if scheme.is_some_and(|s| !s.is_empty() && !s.contains('/')) {
        return Err("only plain files may be named (no protocols)".into());
    }
    let path = Path::new(path);
    if !path.is_absolute() {
        return Err("use an absolute path (spool.job.work_dir is one)".into());
    }
    if path
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err("'..' is not allowed".into());
    }
    let resolved = crate::paths::resolve_existing_prefix(path);
    let inside = |root: &Path| root.canonicalize().is_ok_and(|r| resolved.starts_with(r));
    let ok = if read {
        inside(&rules.writable) || rules.readable.iter().any(|r| inside(r))
    } else {
        inside(&rules.writable)
    };
    if ok {
        Ok(())
    } else if read {
        Err("not one of the job's files".into())
    } else {
        Err(format!(
            "outside the job's work directory {}",
            rules.writable.display()
        ))
    }
}

/// Why a filter graph could open files it should not, as ffmpeg would read it.
fn graph_problems(graph: &str, rules: &ArgvRules, original: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for f in tokens::filters(graph) {
        let name = f.name.split('@').next().unwrap_or(&f.name);
        if FILE_FILTERS.contains(&name) {
            problems.push(format!("filter {name} opens files by name"));
            continue;
        }
        for (key, value) in &f.options {
            match key {
                // A file option is allowed only inside the work directory.
                Some(k) if FILE_KEYS.contains(&k.as_str()) => {
                    if let Err(e) = check_path(value, false, rules, original) {
                        problems.push(format!("filter {name} option {k} {value:?}: {e}"));
                    }
                }
                Some(k) if looks_like_a_path(value) => problems.push(format!(
                    "filter {name} option {k} {value:?} looks like a file outside the job"
                )),
                None if !EXPRESSION_FILTERS.contains(&name)
                    && (looks_like_a_path(value) || value.contains('/') || value.contains('.')) =>
                {
                    problems.push(format!(
                        "filter {name}: positional value {value:?} may name a file; give the option's name"
                    ))
                }
                _ => {}
            }
        }
    }
    problems
}

/// Why an encoder parameter string could open files it should not.
fn encoder_problems(params: &str, rules: &ArgvRules, original: &[String]) -> Vec<String> {
    tokens::encoder_params(params)
        .into_iter()
        .filter_map(|(key, value)| {
            if ENCODER_FILE_KEYS.contains(&key.as_str()) {
                check_path(&value, false, rules, original)
                    .err()
                    .map(|e| format!("parameter {key} {value:?}: {e}"))
            } else if looks_like_a_path(&value) {
                Some(format!("parameter {key} {value:?} looks like a file"))
            } else {
                None
            }
        })
        .collect()
}

/// An absolute, home-relative or parent-relative path, or a URL.
fn looks_like_a_path(value: &str) -> bool {
    value.starts_with('/')
        || value.starts_with('~')
        || value.starts_with("./")
        || value.contains("../")
        || value.contains("://")
        || value.starts_with("file:")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn allows_encoder_options_and_refuses_escapes() -> std::io::Result<()> {
        let work = tempfile::tempdir()?;
        let w = work.path().display().to_string();
        let rules = ArgvRules {
            readable: vec![PathBuf::from("/nonexistent-input.mp4")],
            writable: work.path().to_path_buf(),
        };
        let out = format!("{w}/out.mp4");
        let original = s(&["-y", "-i", "file:/src/in.mkv", "-c:v", "libx264", &out]);
        let mut tuned = original.clone();
        tuned.splice(5..5, s(&["-tune", "film", "-x264-params", "aq-mode=3"]));
        assert_eq!(check_argv(&original, &tuned, &rules), Ok(()));
        for (bad, words) in [
            (vec!["-i", "file:/etc/passwd"], "not one of the job's files"),
            (vec!["-i", "http://example.com/x"], "no protocols"),
            (vec!["-vf", "movie=/etc/passwd"], "opens files"),
            (
                vec!["-vf", "drawtext=textfile=/etc/shadow"],
                "outside the job's",
            ),
            (vec!["-f", "tee"], "not on the allow-list"),
            (vec!["-dump_attachment:t", "x"], "not on the allow-list"),
            (
                vec!["/tmp/elsewhere.mp4"],
                "outside the job's work directory",
            ),
            (vec![&format!("{w}/../escape.mp4")], "'..'"),
        ] {
            let mut argv = original.clone();
            argv.splice(5..5, s(&bad));
            let e = check_argv(&original, &argv, &rules)
                .err()
                .unwrap_or_default();
            assert!(e.contains(words), "{bad:?}: {e}");
        }
        // Read as ffmpeg reads them: quoting, positional options, encoder parameters.
        let stats = format!("{w}/t0-pass");
        for (ok, extra) in [
            (true, vec!["-vf", "scale=iw/2:ih/2,eq=contrast=1.1"]),
            (
                true,
                vec!["-x264-params", "aq-mode=3:zones=0,10,q=20/11,20,b=0.5"],
            ),
            (true, vec!["-x264-params", &format!("pass=1:stats={stats}")]),
            (false, vec!["-x264-params", "dump-yuv=/tmp/outside.yuv"]),
            (false, vec!["-x264-params", "pass=1:stats=/tmp/stats.log"]),
            (false, vec!["-x265-params", "csv=/tmp/x.csv"]),
            (false, vec!["-vf", "split[a][b];[a][b]psnr=/tmp/psnr.log"]),
            (false, vec!["-vf", "psnr=stats.log"]),
            (false, vec!["-vf", "drawtext='textfile=/etc/passwd'"]),
            (false, vec!["-vf", "'movie'=/etc/x.mp4[m];[in][m]overlay"]),
            (false, vec!["-vf", "mov\\ie=/etc/x.mp4"]),
            (false, vec!["-vf", "metadata=mode=print:file=/tmp/m.log"]),
        ] {
            let mut argv = original.clone();
            argv.splice(5..5, extra.iter().map(|x| x.to_string()));
            let verdict = check_argv(&original, &argv, &rules);
            assert_eq!(verdict.is_ok(), ok, "{extra:?}: {verdict:?}");
        }
        let huge: Vec<String> = (0..MAX_ARGS + 1).map(|_| "-an".to_string()).collect();
        assert!(check_argv(&original, &huge, &rules)
            .err()
            .is_some_and(|e| e.contains("too large")));
        Ok(())
    }
}
