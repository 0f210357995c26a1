//! The `streams:` section: which of the source's tracks, chapters and tags a job keeps.
//! By default nothing is lost.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Streams {
    pub audio: Select,
    pub subtitles: Select,
    pub chapters: Keep,
    pub metadata: Keep,
}

/// Which tracks of a kind: `all`, `first`, `none`, or `{languages: [eng, fra]}`
/// (ISO 639-2 codes as the file tags them; untagged tracks are kept by `all` only).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    #[default]
    All,
    First,
    None,
    Languages(Vec<String>),
}

impl Select {
    /// The positions (among `languages`, in order) of the tracks kept.
    pub fn pick(&self, languages: &[Option<&str>]) -> Vec<usize> {
        match self {
            Select::All => (0..languages.len()).collect(),
            Select::First => (0..languages.len().min(1)).collect(),
            Select::None => Vec::new(),
            Select::Languages(wanted) => (0..languages.len())
                .filter(|i| {
                    languages[*i].is_some_and(|l| wanted.iter().any(|w| w.eq_ignore_ascii_case(l)))
                })
                .collect(),
        }
    }
}

const SELECT_WORDS: &[&str] = &["all", "first", "none", "languages"];

/// YAML writes enums as tags; a selection is either a word or `{languages: [...]}`.
impl<'de> Deserialize<'de> for Select {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SelectVisitor)
    }
}

struct SelectVisitor;

impl<'de> serde::de::Visitor<'de> for SelectVisitor {
    type Value = Select;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("`all`, `first`, `none` or `{languages: [eng, fra]}`")
    }

    fn visit_str<E: serde::de::Error>(self, word: &str) -> Result<Select, E> {
        match word {
            "all" => Ok(Select::All),
            "first" => Ok(Select::First),
            "none" => Ok(Select::None),
            other => Err(E::unknown_variant(other, SELECT_WORDS)),
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Select, A::Error> {
        let mut languages: Option<Vec<String>> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "languages" {
                return Err(serde::de::Error::unknown_field(&key, &["languages"]));
            }
            languages = Some(map.next_value()?);
        }
        languages
            .map(Select::Languages)
            .ok_or_else(|| serde::de::Error::missing_field("languages"))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    #[default]
    Keep,
    Drop,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections() {
        let langs = [Some("eng"), None, Some("fra"), Some("ger")];
        assert_eq!(Select::All.pick(&langs), [0, 1, 2, 3]);
        assert_eq!(Select::First.pick(&langs), [0]);
        assert!(Select::None.pick(&langs).is_empty());
        let some = Select::Languages(vec!["FRA".into(), "eng".into()]);
        assert_eq!(some.pick(&langs), [0, 2], "file order, case ignored");
        assert!(Select::First.pick(&[]).is_empty());
        let yaml: Streams =
            serde_yaml::from_str("audio: {languages: [eng]}\nsubtitles: none\nchapters: drop\n")
                .expect("parses");
        assert_eq!(yaml.audio, Select::Languages(vec!["eng".into()]));
        assert_eq!(yaml.subtitles, Select::None);
        assert_eq!(yaml.chapters, Keep::Drop);
        assert_eq!(yaml.metadata, Keep::Keep);
    }
}
