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
                    languages[*i].is_some_and(|l| wanted.iter().any(|w| same_language(w, l)))
                })
                .collect(),
        }
    }
}

/// ISO 639-1 codes and the ISO 639-2 bibliographic codes files often carry (`fre`, `ger`),
/// each with the terminological code they mean.
#[rustfmt::skip]
const ALIASES: &[(&str, &str)] = &[
    ("en", "eng"), ("fr", "fra"), ("fre", "fra"), ("de", "deu"), ("ger", "deu"),
    ("es", "spa"), ("it", "ita"), ("pt", "por"), ("nl", "nld"), ("dut", "nld"),
    ("ru", "rus"), ("ja", "jpn"), ("zh", "zho"), ("chi", "zho"), ("ko", "kor"),
    ("ar", "ara"), ("hi", "hin"), ("sv", "swe"), ("no", "nor"), ("da", "dan"),
    ("fi", "fin"), ("pl", "pol"), ("cs", "ces"), ("cze", "ces"), ("el", "ell"),
    ("gre", "ell"), ("tr", "tur"), ("he", "heb"), ("hu", "hun"), ("ro", "ron"),
    ("rum", "ron"), ("uk", "ukr"), ("fa", "fas"), ("per", "fas"), ("sk", "slk"),
    ("slo", "slk"), ("is", "isl"), ("ice", "isl"), ("cy", "cym"), ("wel", "cym"),
    ("eu", "eus"), ("baq", "eus"), ("hy", "hye"), ("arm", "hye"), ("ka", "kat"),
    ("geo", "kat"), ("mk", "mkd"), ("mac", "mkd"), ("ms", "msa"), ("may", "msa"),
    ("sq", "sqi"), ("alb", "sqi"), ("my", "mya"), ("bur", "mya"), ("bo", "bod"),
    ("tib", "bod"), ("mi", "mri"), ("mao", "mri"), ("ca", "cat"), ("th", "tha"),
    ("vi", "vie"), ("id", "ind"), ("bg", "bul"), ("hr", "hrv"), ("sr", "srp"),
];

fn canonical(code: &str) -> String {
    let lower = code.to_ascii_lowercase();
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == lower)
        .map_or(lower, |(_, code)| code.to_string())
}

/// Whether two language codes name the same language (`en`, `eng`; `fre`, `fra`).
pub fn same_language(a: &str, b: &str) -> bool {
    canonical(a) == canonical(b)
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
        let aliases = Select::Languages(vec!["en".into(), "deu".into()]);
        assert_eq!(aliases.pick(&langs), [0, 3], "en is eng, ger is deu");
        assert!(same_language("fre", "fra") && !same_language("fra", "eng"));
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
