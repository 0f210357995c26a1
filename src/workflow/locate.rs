//! Maps field paths such as `profiles[1].crf` to line:column in the YAML text, so every
//! error can point at its place in the file, not only the first one serde stops at.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// 1-based line and column of each key and sequence item, by field path.
#[derive(Debug, Default)]
pub struct Locations {
    by_path: HashMap<String, (usize, usize)>,
}

impl Locations {
    /// Reads the text once. Unparseable text yields no locations (serde reports that error).
    pub fn of(text: &str) -> Locations {
        let mut recorder = Recorder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut recorder, false).is_err() {
            return Locations::default();
        }
        Locations {
            by_path: recorder.found,
        }
    }

    /// The place of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = path;
        loop {
            if let Some(at) = self.by_path.get(p) {
                return Some(*at);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

enum Frame {
    /// `item`: a sequence item's path, placed at its first key.
    Map {
        path: String,
        key: Option<String>,
        item: Option<String>,
    },
    Seq {
        path: String,
        index: usize,
    },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    found: HashMap<String, (usize, usize)>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Recorder {
    fn at(mark: Marker) -> (usize, usize) {
        (mark.line(), mark.col() + 1)
    }

    /// The path of a value starting here, recording scalar sequence items.
    fn value_path(&mut self, mark: Option<Marker>) -> String {
        match self.stack.last() {
            Some(Frame::Map {
                path, key: Some(k), ..
            }) => join(path, k),
            Some(Frame::Seq { path, index }) => {
                let p = format!("{path}[{index}]");
                if let Some(mark) = mark {
                    self.found.entry(p.clone()).or_insert(Self::at(mark));
                }
                p
            }
            _ => String::new(),
        }
    }

    /// A value finished: the parent map expects a key next, or the sequence moves on.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(text, ..) => {
                if let Some(Frame::Map {
                    path,
                    key: key @ None,
                    item,
                }) = self.stack.last_mut()
                {
                    if let Some(item) = item.take() {
                        self.found.entry(item).or_insert(Self::at(mark));
                    }
                    let p = join(path, &text);
                    self.found.entry(p).or_insert(Self::at(mark));
                    *key = Some(text);
                } else {
                    self.value_path(Some(mark));
                    self.value_done();
                }
            }
            Event::Alias(_) => {
                self.value_path(Some(mark));
                self.value_done();
            }
            Event::MappingStart(..) => {
                let in_seq = matches!(self.stack.last(), Some(Frame::Seq { .. }));
                let path = self.value_path(None);
                let item = in_seq.then(|| path.clone());
                self.stack.push(Frame::Map {
                    path,
                    key: None,
                    item,
                });
            }
            Event::SequenceStart(..) => {
                let path = self.value_path(Some(mark));
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_in_block_and_flow_style() {
        let text = "version: 1\nchunking:\n  segment_seconds: 0\nprofiles:\n  - { name: a, crf: 99 }\n  - name: b\n    height: 7\n";
        let l = Locations::of(text);
        assert_eq!(l.find("version"), Some((1, 1)));
        assert_eq!(l.find("chunking.segment_seconds"), Some((3, 3)));
        assert_eq!(l.find("profiles[0].crf"), Some((5, 16)));
        assert_eq!(l.find("profiles[0]"), Some((5, 7)));
        assert_eq!(l.find("profiles[1].height"), Some((7, 5)));
        assert_eq!(l.find("profiles[1]"), Some((6, 5)));
        // An absent field falls back to its parent.
        assert_eq!(l.find("profiles[1].preset"), Some((6, 5)));
    }
}
