//! The checked-in corpus: `fuzz/corpus/<service>/<Method>/<name>`, one request (the message's bytes) per file,
//! the layout `cargo fuzz run <target> fuzz/corpus/<service>/<Method>` reads. Names are a hash of the content.
use std::{
    fs, io,
    path::{Path, PathBuf},
};

use crate::schema::Rpc;

/// The folder of `rpc`'s seeds under `root`.
pub fn dir(root: &Path, rpc: &Rpc) -> PathBuf {
    root.join(&rpc.service).join(&rpc.method)
}

/// The seeds in `dir`, by name (none when it does not exist).
pub fn load(dir: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut seeds = Vec::new();
    for e in entries {
        let e = e?;
        if e.file_type()?.is_file() {
            seeds.push((e.file_name().to_string_lossy().into_owned(), fs::read(e.path())?));
        }
    }
    seeds.sort();
    Ok(seeds)
}

/// Writes `bytes` into `dir` under the name of its hash; the path.
pub fn save(dir: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let path = dir.join(name(bytes));
    fs::write(&path, bytes)?;
    Ok(path)
}

/// 16 hex digits of the FNV-1a hash of `bytes`.
pub fn name(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_seeds_load_back_by_their_hash() {
        let root = std::env::temp_dir().join(format!("rapport-corpus-{}", std::process::id()));
        let rpc = Rpc {
            service: "rapport.x.v1.X".into(),
            method: "Y".into(),
            input: ".rapport.x.v1.YRequest".into(),
            client_streaming: false,
            server_streaming: false,
        };
        let d = dir(&root, &rpc);
        save(&d, b"one").unwrap();
        save(&d, b"two").unwrap();
        save(&d, b"one").unwrap();
        let seeds = load(&d).unwrap();
        assert_eq!(seeds.len(), 2);
        assert!(seeds.iter().any(|(n, b)| n == &name(b"one") && b == b"one"));
        assert!(load(&root.join("missing")).unwrap().is_empty());
        fs::remove_dir_all(&root).unwrap();
    }
}
