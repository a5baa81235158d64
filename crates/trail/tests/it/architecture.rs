//! ARCHITECTURE.md's code map names every source file: a file added without its line
//! in the map fails here, so that a reader can find any concern's file from the map.

use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Whether the map names `file`: a room by its file name (`` `name.rs` `` or a path
/// ending so), a `mod.rs` by its directory (`` `dir/` ``), a crate root by its crate.
fn named(map: &str, krate: &str, file: &Path) -> bool {
    let name = file.file_name().unwrap().to_string_lossy();
    let dir = file.parent().and_then(Path::file_name).unwrap().to_string_lossy();
    match name.as_ref() {
        "lib.rs" | "main.rs" if dir == "src" => map.contains(&format!("`crates/{krate}`")),
        "mod.rs" => map.contains(&format!("`{dir}/")) || map.contains(&format!("/{dir}/`")),
        _ => map.contains(&format!("`{name}`")) || map.contains(&format!("/{name}`")),
    }
}

#[test]
fn the_code_map_names_every_source_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    let mut read = 0;
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        let krate = krate.unwrap().path();
        let name = krate.file_name().unwrap().to_string_lossy().to_string();
        for file in sources(&krate.join("src")) {
            read += 1;
            if !named(&map, &name, &file) {
                missing.push(file.strip_prefix(&root).unwrap_or(&file).display().to_string());
            }
        }
    }
    assert!(read > 100, "the sources were read ({read})");
    assert!(missing.is_empty(), "ARCHITECTURE.md's code map does not name: {missing:#?}");
}

#[test]
fn a_file_the_map_does_not_name_is_found() {
    let map = "- `crates/trail-store` — `lib.rs`, `sqlite/` (`writer.rs`), `work/streams/render.rs`";
    assert!(named(map, "trail-store", Path::new("crates/trail-store/src/lib.rs")));
    assert!(named(map, "trail-store", Path::new("crates/trail-store/src/sqlite/mod.rs")));
    assert!(named(map, "trail-store", Path::new("crates/trail-store/src/sqlite/writer.rs")));
    assert!(named(map, "trail-server", Path::new("crates/trail-server/src/work/streams/render.rs")));
    assert!(!named(map, "trail-store", Path::new("crates/trail-store/src/sqlite/reader.rs")));
    assert!(!named(map, "trail-core", Path::new("crates/trail-core/src/lib.rs")));
}
