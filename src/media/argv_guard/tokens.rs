//! Filter graphs and encoder parameter strings read the way ffmpeg reads them, so a check
//! sees what ffmpeg will see: `av_get_token` quoting (`'…'` quotes, `\` escapes, outer
//! whitespace trimmed) at the graph level, then again inside each filter's options.

/// ffmpeg's `av_get_token`: reads from `s[*pos..]` up to an unquoted character of `terms`.
pub fn get_token(s: &[char], pos: &mut usize, terms: &[char]) -> String {
    while *pos < s.len() && s[*pos].is_whitespace() {
        *pos += 1;
    }
    let mut out: Vec<char> = Vec::new();
    // Trailing whitespace is trimmed only back to the last quoted or escaped character.
    let mut keep = 0;
    while *pos < s.len() && !terms.contains(&s[*pos]) {
        let c = s[*pos];
        *pos += 1;
        if c == '\\' && *pos < s.len() {
            out.push(s[*pos]);
            *pos += 1;
            keep = out.len();
        } else if c == '\'' {
            while *pos < s.len() && s[*pos] != '\'' {
                out.push(s[*pos]);
                *pos += 1;
            }
            if *pos < s.len() {
                *pos += 1;
                keep = out.len();
            }
        } else {
            out.push(c);
        }
    }
    while out.len() > keep && out.last().is_some_and(|c| c.is_whitespace()) {
        out.pop();
    }
    out.into_iter().collect()
}

/// One filter of a graph: its name and its options, each (key, value); positional ones
/// have no key.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub name: String,
    pub options: Vec<(Option<String>, String)>,
}

/// The filters of a filter graph (`-vf`, `-af`, `-filter_complex`), as ffmpeg parses it.
pub fn filters(graph: &str) -> Vec<Filter> {
    let s: Vec<char> = graph.chars().collect();
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < s.len() {
        skip_labels(&s, &mut pos);
        let name = get_token(&s, &mut pos, &['=', ',', ';', '[']);
        let mut args = String::new();
        if s.get(pos) == Some(&'=') {
            pos += 1;
            args = get_token(&s, &mut pos, &['[', ']', ',', ';']);
        }
        skip_labels(&s, &mut pos);
        if !name.is_empty() {
            out.push(Filter {
                options: options(&args),
                name,
            });
        }
        // The separator, or anything the graph parser would stop at.
        pos += 1;
    }
    out
}

fn skip_labels(s: &[char], pos: &mut usize) {
    loop {
        while *pos < s.len() && s[*pos].is_whitespace() {
            *pos += 1;
        }
        if s.get(*pos) != Some(&'[') {
            return;
        }
        while *pos < s.len() && s[*pos] != ']' {
            *pos += 1;
        }
        *pos += 1;
    }
}

/// A filter's option string: `key=value` or positional values, separated by `:`.
pub fn options(args: &str) -> Vec<(Option<String>, String)> {
    let s: Vec<char> = args.chars().collect();
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < s.len() {
        let start = pos;
        // A key is a run of key characters followed by '='; anything else is a value.
        let mut end = pos;
        while end < s.len() && (s[end].is_ascii_alphanumeric() || "_-/.".contains(s[end])) {
            end += 1;
        }
        let key = (end > start && s.get(end) == Some(&'='))
            .then(|| s[start..end].iter().collect::<String>());
        if key.is_some() {
            pos = end + 1;
        }
        let value = get_token(&s, &mut pos, &[':']);
        out.push((key, value));
        pos += 1;
    }
    out
}

/// An encoder's parameter string (`-x264-params`, `-x265-params`, `-svtav1-params`):
/// `key=value` pairs separated by `:`.
pub fn encoder_params(params: &str) -> Vec<(String, String)> {
    params
        .split(':')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (p.trim().to_string(), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(graph: &str) -> Vec<String> {
        filters(graph).into_iter().map(|f| f.name).collect()
    }

    #[test]
    fn reads_graphs_as_ffmpeg_does() {
        assert_eq!(
            names("[0:v]split=2[a][b];[a]scale=-2:240[o0];[b]'movie'=/x.mp4[m]"),
            ["split", "scale", "movie"]
        );
        // A backslash-escaped name is the same name.
        assert_eq!(names("mov\\ie=/x"), ["movie"]);
        let f = &filters("drawtext='textfile=/etc/passwd':x=10")[0];
        assert_eq!(f.name, "drawtext");
        // Quoted at the graph level, the option string is `textfile=/etc/passwd:x=10`.
        assert_eq!(
            f.options,
            [
                (Some("textfile".into()), "/etc/passwd".into()),
                (Some("x".into()), "10".into())
            ]
        );
        // Positional: psnr's first option is its stats file.
        assert_eq!(
            filters("psnr=/tmp/stats.log")[0].options,
            [(None, "/tmp/stats.log".into())]
        );
        // Escaped quotes reach the option level as quotes, where they quote a value.
        let t = &filters("drawtext=text=\\'a\\:b\\'")[0];
        assert_eq!(t.options, [(Some("text".into()), "a:b".into())]);
        assert_eq!(
            get_token(&" 'a b' c ".chars().collect::<Vec<_>>(), &mut 0, &[]),
            "a b c"
        );
    }

    #[test]
    fn reads_encoder_params() {
        assert_eq!(
            encoder_params("aq-mode=3:dump-yuv=/tmp/x.yuv:no-mbtree"),
            [
                ("aq-mode".to_string(), "3".to_string()),
                ("dump-yuv".into(), "/tmp/x.yuv".into()),
                ("no-mbtree".into(), String::new())
            ]
        );
    }
}
