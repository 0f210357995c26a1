//! Structured changes to spool's encode commands, rendered and quoted by spool: options
//! for each output (`-tune film`), encoder parameters (`aq-mode=3` into `-x264-params`),
//! and filters appended to each output's video chain (`eq` with `contrast=1.1`). A script
//! names what it wants; it never writes a string ffmpeg might read another way.

use std::collections::BTreeMap;
use std::ffi::OsString;

use serde::Deserialize;

/// What a hook asks to change, applied to every output of a command.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Edits {
    /// Options set after the encoder, e.g. `{ ["-tune"] = "film", ["-crf"] = 20 }`.
    pub options: BTreeMap<String, Scalar>,
    /// The encoder's own parameters (x264, x265, SVT-AV1), merged into its `-*-params`.
    pub encoder_params: BTreeMap<String, Scalar>,
    /// Filters appended to each output's video chain, in order.
    pub filters: Vec<FilterEdit>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterEdit {
    pub name: String,
    #[serde(default)]
    pub args: BTreeMap<String, Scalar>,
}

/// A value as Lua gives it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Integer(i64),
    Number(f64),
    Bool(bool),
}

impl Scalar {
    fn render(&self) -> String {
        match self {
            Scalar::Text(s) => s.clone(),
            Scalar::Integer(i) => i.to_string(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => u8::from(*b).to_string(),
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
}

/// `c` escaped with a backslash when it is one of `special`.
pub(crate) fn escape(value: &str, special: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if special.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One filter as a graph fragment: option values escaped for the option level, then the
/// whole escaped again for the graph level, as ffmpeg's documentation describes.
pub fn render_filter(f: &FilterEdit) -> Result<String, String> {
    if !is_name(&f.name) {
        return Err(format!(
            "filter name {:?}: letters, digits, '_' and '-' only",
            f.name
        ));
    }
    if f.args.is_empty() {
        return Ok(f.name.clone());
    }
    let mut args = Vec::new();
    for (k, v) in &f.args {
        if !is_name(k) {
            return Err(format!(
                "filter {} option {k:?}: letters, digits, '_' and '-' only",
                f.name
            ));
        }
        args.push(format!("{k}={}", escape(&v.render(), "\\':")));
    }
    Ok(format!("{}={}", f.name, escape(&args.join(":"), "\\'[],;")))
}

/// The parameter option of an encoder, if it has one.
fn params_option(encoder: &str) -> Option<&'static str> {
    match encoder {
        "libx264" => Some("-x264-params"),
        "libx265" => Some("-x265-params"),
        "libsvtav1" => Some("-svtav1-params"),
        _ => None,
    }
}

/// Applies `edits` to a spool encode command (`-c:v ENCODER … OUTPUT` per output).
pub fn apply(argv: &[OsString], edits: &Edits) -> Result<Vec<OsString>, String> {
    let mut out: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let filters = edits
        .filters
        .iter()
        .map(render_filter)
        .collect::<Result<Vec<_>, _>>()?;
    if !filters.is_empty() {
        add_filters(&mut out, &filters.join(","))?;
    }
    // Each output block starts at its `-c:v`: options and parameters go right after.
    let mut i = 0;
    while i < out.len() {
        if out[i] != "-c:v" || i + 1 >= out.len() {
            i += 1;
            continue;
        }
        let encoder = out[i + 1].clone();
        let mut insert: Vec<String> = Vec::new();
        for (k, v) in &edits.options {
            if !k.starts_with('-') || !is_name(&k[1..]) {
                return Err(format!("option {k:?}: a name such as -tune"));
            }
            insert.extend([k.clone(), v.render()]);
        }
        if !edits.encoder_params.is_empty() {
            let opt = params_option(&encoder)
                .ok_or_else(|| format!("{encoder} takes no encoder parameters"))?;
            let mut params = Vec::new();
            for (k, v) in &edits.encoder_params {
                let v = v.render();
                if !is_name(k) || v.contains([':', '=']) {
                    return Err(format!(
                        "encoder parameter {k}={v:?}: no ':' or '=' in either"
                    ));
                }
                params.push(format!("{k}={v}"));
            }
            let end = block_end(&out, i);
            match (i..end).find(|j| out[*j] == opt) {
                // spool's own parameters stay; the script's follow them.
                Some(j) if j + 1 < out.len() => {
                    out[j + 1] = format!("{}:{}", out[j + 1], params.join(":"))
                }
                _ => insert.extend([opt.to_string(), params.join(":")]),
            }
        }
        let at = i + 2;
        let n = insert.len();
        out.splice(at..at, insert);
        i = at + n;
    }
    Ok(out.into_iter().map(OsString::from).collect())
}

/// Where the output block starting at `start` ends (the next `-c:v`, or the end).
fn block_end(argv: &[String], start: usize) -> usize {
    (start + 2..argv.len())
        .find(|j| argv[*j] == "-c:v")
        .unwrap_or(argv.len())
}

/// Appends `chain` to each output's video filters: in a ladder's `-filter_complex`, before
/// each output label `[oN]`; otherwise at the end of `-vf`.
fn add_filters(argv: &mut [String], chain: &str) -> Result<(), String> {
    if let Some(i) = argv.iter().position(|a| a == "-filter_complex") {
        let graph = argv
            .get_mut(i + 1)
            .ok_or("a -filter_complex without a graph")?;
        let mut n = 0;
        while graph.contains(&format!("[o{n}]")) {
            *graph = graph.replace(&format!("[o{n}]"), &format!(",{chain}[o{n}]"));
            n += 1;
        }
        return Ok(());
    }
    let mut found = false;
    for i in 0..argv.len().saturating_sub(1) {
        if argv[i] == "-vf" {
            argv[i + 1] = format!("{},{chain}", argv[i + 1]);
            found = true;
        }
    }
    match found {
        true => Ok(()),
        false => Err("the command has no video filter chain to add to".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::argv_guard::tokens::filters;

    fn argv(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn rendered_filters_read_back_exactly_through_ffmpegs_quoting() -> Result<(), String> {
        let hostile = "a'b:c,d;e[f]g\\h=i";
        let f = FilterEdit {
            name: "drawtext".into(),
            args: [("text".to_string(), Scalar::Text(hostile.into()))].into(),
        };
        let graph = format!("scale=-2:240,{}", render_filter(&f)?);
        let parsed = filters(&graph);
        assert_eq!(parsed.len(), 2, "{graph}: {parsed:?}");
        assert_eq!(parsed[1].name, "drawtext");
        assert_eq!(parsed[1].options, [(Some("text".into()), hostile.into())]);
        assert!(render_filter(&FilterEdit {
            name: "eq;movie".into(),
            args: BTreeMap::new()
        })
        .is_err());
        Ok(())
    }

    #[test]
    fn edits_reach_every_output() -> Result<(), String> {
        let ladder = argv(&[
            "-y",
            "-i",
            "in",
            "-filter_complex",
            "[0:v:0]split=2[s0][s1];[s0]scale=-2:144[o0];[s1]scale=-2:240[o1]",
            "-map",
            "[o0]",
            "-c:v",
            "libx264",
            "-crf",
            "23",
            "a.mp4",
            "-map",
            "[o1]",
            "-c:v",
            "libx265",
            "-x265-params",
            "keyint=25",
            "b.mp4",
        ]);
        let edits = Edits {
            options: [("-tune".to_string(), Scalar::Text("film".into()))].into(),
            encoder_params: [("aq-mode".to_string(), Scalar::Integer(3))].into(),
            filters: vec![FilterEdit {
                name: "eq".into(),
                args: [("contrast".to_string(), Scalar::Number(1.1))].into(),
            }],
        };
        let out: Vec<String> = apply(&ladder, &edits)?
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            out[4].contains("scale=-2:144,eq=contrast=1.1[o0]")
                && out[4].contains(",eq=contrast=1.1[o1]"),
            "{}",
            out[4]
        );
        let x264 = out.iter().position(|a| a == "libx264").unwrap_or(0);
        assert_eq!(
            out[x264 + 1..x264 + 5],
            ["-tune", "film", "-x264-params", "aq-mode=3"]
        );
        assert!(out.contains(&"keyint=25:aq-mode=3".to_string()), "{out:?}");
        let bad = Edits {
            encoder_params: [("stats".to_string(), Scalar::Text("/x:y=z".into()))].into(),
            ..Edits::default()
        };
        assert!(apply(&ladder, &bad).is_err());
        Ok(())
    }
}
