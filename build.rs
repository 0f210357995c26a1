//! Build script. With the `ct2-prebuilt` feature (the default), spool's Whisper links the
//! CTranslate2 shared library that PyPI's `ctranslate2` wheel ships (the library faster-whisper
//! runs on) instead of compiling CTranslate2 from source, which takes about 11 minutes on two
//! cores and used to happen once per cargo profile. `ct2-source` keeps the from-source build.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wheel whose library matches the CTranslate2 headers ct2rs compiles its bridge against
/// (ct2rs 0.10.3 vendors CTranslate2 4.8.4); another version could differ in struct layouts.
const WHEEL_VERSION: &str = "4.8.4";

/// Shown as is when the build script returns it (cargo prints `Error: <Debug>`).
struct BuildError(String);

impl std::fmt::Debug for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "spool build: {}", self.0)
    }
}

fn main() -> Result<(), BuildError> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SPOOL_CT2_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PYTHON");
    let feature = |name: &str| env::var_os(format!("CARGO_FEATURE_{name}")).is_some();
    let (whisper, prebuilt, source) = (
        feature("WHISPER"),
        feature("CT2_PREBUILT"),
        feature("CT2_SOURCE"),
    );
    if prebuilt && source {
        return Err(BuildError("features ct2-prebuilt and ct2-source exclude each other; for the source build use --no-default-features --features ct2-source".into()));
    }
    if whisper && !prebuilt && !source {
        return Err(BuildError("the whisper feature needs a CTranslate2: add ct2-prebuilt (the PyPI wheel) or ct2-source (cmake build)".into()));
    }
    if prebuilt {
        link_wheel().map_err(BuildError)?;
    }
    Ok(())
}

/// Points the linker at the wheel's library and records its folder as the binaries' run path.
fn link_wheel() -> Result<(), String> {
    let libs = wheel_lib_dir()?;
    let library = versioned_library(&libs)?;
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?).join("ct2");
    fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    // The linker asks for libctranslate2.so; the wheel names it with a hash and a version.
    let link = out.join("libctranslate2.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&library, &link).map_err(|e| format!("{}: {e}", link.display()))?;
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", libs.display());
    println!("cargo:rustc-env=SPOOL_CT2_LIBRARY={}", library.display());
    println!("cargo:rerun-if-changed={}", library.display());
    Ok(())
}

/// `SPOOL_CT2_LIB_DIR`, else the `ctranslate2.libs` folder beside the installed Python package.
fn wheel_lib_dir() -> Result<PathBuf, String> {
    if let Some(dir) = env::var_os("SPOOL_CT2_LIB_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let python = env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let found = Command::new(&python)
        .args([
            "-c",
            "import ctranslate2, os; print(ctranslate2.__version__); print(os.path.dirname(ctranslate2.__file__))",
        ])
        .current_dir(env::temp_dir())
        .output()
        .map_err(|e| format!("cannot run {python} to find the ctranslate2 wheel: {e}"))?;
    let text = String::from_utf8_lossy(&found.stdout);
    let mut lines = text.lines();
    let (Some(version), Some(package)) = (lines.next(), lines.next()) else {
        return Err(format!(
            "the Python package ctranslate2 {WHEEL_VERSION} is not installed: run `bash .ci/setup` \
             (or `python3 -m pip install ctranslate2=={WHEEL_VERSION}`), set SPOOL_CT2_LIB_DIR, or \
             build CTranslate2 from source with --no-default-features --features ct2-source"
        ));
    };
    if version != WHEEL_VERSION {
        return Err(format!(
            "ctranslate2 {version} is installed but spool links {WHEEL_VERSION}, the version of the \
             headers it compiles against: python3 -m pip install ctranslate2=={WHEEL_VERSION}"
        ));
    }
    Ok(Path::new(package).with_file_name("ctranslate2.libs"))
}

/// The wheel's `libctranslate2-<hash>.so.<version>`.
fn versioned_library(libs: &Path) -> Result<PathBuf, String> {
    let entries = fs::read_dir(libs).map_err(|e| format!("{}: {e}", libs.display()))?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libctranslate2") && n.contains(".so"))
        })
        .ok_or_else(|| format!("no libctranslate2*.so* in {}", libs.display()))
}
