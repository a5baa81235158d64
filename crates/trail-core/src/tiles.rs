//! C2SP `tlog-tiles`: a log's tree and entries as static tiles. What a tile path names
//! (`<L>/<N>[.p/<W>]`, `entries/<N>[.p/<W>]`, with `N` in the `x001/x234/067` form),
//! which stored tree nodes or entries it holds, the smallest tree that has it, and the
//! entry bundle's encoding (each entry prefixed by its big-endian uint16 length).
//!
//! Trail's tree is RFC 6962's, and every complete subtree is stored: the `i`-th hash of
//! tile `(L, N)` is the node at binary level `8 * L`, index `N * 256 + i`.

/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 256;
/// The largest entry an entry bundle carries (its length prefix is a uint16).
pub const MAX_ENTRY_BYTES: usize = 65_535;
/// The highest tile level a tree of up to 2^64 entries has.
const MAX_LEVEL: u8 = 7;

/// What a tile holds: hashes of one level, or entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileKind {
    Hashes { level: u8 },
    Entries,
}

/// One tile, full or partial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub kind: TileKind,
    pub index: u64,
    /// `Some(w)` for a partial tile of `w` (1 to 255) hashes or entries.
    pub partial: Option<u16>,
}

impl Tile {
    /// Reads the part of a tile URL after `tile/`: `0/x001/234`, `1/005.p/17`,
    /// `entries/000`. Anything else is an error naming what is wrong.
    pub fn parse(path: &str) -> Result<Tile, String> {
        let (kind, rest) = path.split_once('/').ok_or("a tile path is <L>/<N> or entries/<N>")?;
        let kind = match kind {
            "entries" => TileKind::Entries,
            l => TileKind::Hashes { level: decimal(l, "level")? },
        };
        if let TileKind::Hashes { level } = kind {
            if level > 63 {
                return Err("the level is 0 to 63".into());
            }
        }
        let (index, partial) = match rest.split_once(".p/") {
            Some((n, w)) => {
                let w: u16 = decimal(w, "width")?;
                if !(1..=255).contains(&w) {
                    return Err("a partial tile's width is 1 to 255".into());
                }
                (n, Some(w))
            }
            None => (rest, None),
        };
        Ok(Tile { kind, index: index_of(index)?, partial })
    }

    /// The path after `tile/` (the inverse of `parse`).
    pub fn path(&self) -> String {
        let kind = match self.kind {
            TileKind::Hashes { level } => level.to_string(),
            TileKind::Entries => "entries".into(),
        };
        let mut p = format!("{kind}/{}", index_path(self.index));
        if let Some(w) = self.partial {
            p.push_str(&format!(".p/{w}"));
        }
        p
    }

    /// Hashes or entries it holds.
    pub fn width(&self) -> u64 {
        self.partial.map_or(TILE_WIDTH, u64::from)
    }

    /// Leaves under one of its hashes: `256^L` (1 for entries).
    fn span(&self) -> Option<u64> {
        match self.kind {
            TileKind::Hashes { level } if level > MAX_LEVEL => None,
            TileKind::Hashes { level } => TILE_WIDTH.checked_pow(u32::from(level)),
            TileKind::Entries => Some(1),
        }
    }

    /// The smallest tree that holds this tile (`None` when no tree of up to 2^64
    /// entries does).
    pub fn needs(&self) -> Option<u64> {
        self.index.checked_mul(TILE_WIDTH)?.checked_add(self.width())?.checked_mul(self.span()?)
    }

    /// The first entry under it (its start index).
    pub fn start(&self) -> Option<u64> {
        self.index.checked_mul(TILE_WIDTH)?.checked_mul(self.span()?)
    }

    /// Its hashes as stored tree nodes: `(binary level, first index, end index)`.
    pub fn nodes(&self) -> Option<(u32, u64, u64)> {
        let TileKind::Hashes { level } = self.kind else { return None };
        let from = self.index.checked_mul(TILE_WIDTH)?;
        Some((u32::from(level) * 8, from, from.checked_add(self.width())?))
    }

    /// Whether the tree of `size` holds it. A partial tile of width `w` is the rightmost
    /// tile of every tree whose size gives that width; its hashes are complete subtrees
    /// of them all, so it stays served (unchanging) as the tree grows past it, for
    /// clients still at an older checkpoint.
    pub fn in_tree(&self, size: u64) -> bool {
        self.needs().is_some_and(|needs| needs <= size)
    }
}

/// A tile index as C2SP writes it: 3-digit elements, all but the last prefixed `x`.
pub fn index_path(index: u64) -> String {
    let mut parts = vec![format!("{:03}", index % 1000)];
    let mut n = index / 1000;
    while n > 0 {
        parts.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

fn index_of(path: &str) -> Result<u64, String> {
    let parts: Vec<&str> = path.split('/').collect();
    let mut n: u64 = 0;
    for (i, p) in parts.iter().enumerate() {
        let digits = if i + 1 < parts.len() {
            p.strip_prefix('x').ok_or("every element of the index but the last starts with x")?
        } else {
            p
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("the index is written in 3-digit elements (x001/x234/067)".into());
        }
        let d: u64 = digits.parse().map_err(|_| "the index is not a number")?;
        n = n.checked_mul(1000).and_then(|n| n.checked_add(d)).ok_or("the index is too large")?;
    }
    if index_path(n) != path {
        return Err("the index has leading zero elements".into());
    }
    Ok(n)
}

/// A decimal ASCII number without leading zeros.
fn decimal<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    let bad = || format!("the {what} is a decimal number without leading zeros");
    if !ok {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

/// An entry bundle: each entry prefixed by its big-endian uint16 length. An entry over
/// `MAX_ENTRY_BYTES` is an error naming its position (stored events are kept under it).
pub fn bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for (i, e) in entries.into_iter().enumerate() {
        let len = u16::try_from(e.len())
            .map_err(|_| format!("entry {i} of the bundle is {} bytes, more than an entry bundle carries", e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// The entries of a bundle (the inverse of `bundle`), or `None` when it is malformed.
pub fn unbundle(mut bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = usize::from(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]));
        let entry = bytes.get(2..2 + len)?;
        out.push(entry);
        bytes = &bytes[2 + len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_and_write_as_the_spec_shows() {
        assert_eq!(index_path(1_234_067), "x001/x234/067");
        assert_eq!(index_path(0), "000");
        assert_eq!(index_path(1000), "x001/000");
        let t = Tile::parse("0/x001/x234/067").unwrap();
        assert_eq!((t.kind, t.index, t.partial), (TileKind::Hashes { level: 0 }, 1_234_067, None));
        let t = Tile::parse("1/005.p/17").unwrap();
        assert_eq!((t.kind, t.index, t.partial), (TileKind::Hashes { level: 1 }, 5, Some(17)));
        assert_eq!(Tile::parse("entries/x001/000.p/3").unwrap().path(), "entries/x001/000.p/3");
        for bad in [
            "0",
            "00/000",
            "0/0",
            "0/1234",
            "0/x000/001",
            "0/001/002",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/07",
            "64/000",
            "x/000",
            "entries/0",
            "0/x1/000",
        ] {
            assert!(Tile::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn which_tiles_a_tree_has() {
        // The spec's example: a tree of 70,000.
        let size = 70_000;
        let t = |p: &str| Tile::parse(p).unwrap().in_tree(size);
        assert!(t("0/272") && !t("0/273") && t("0/273.p/112") && !t("0/273.p/113"));
        // An older tree's rightmost tile, which clients at its checkpoint still read.
        assert!(t("0/273.p/111") && t("0/100.p/5"));
        assert!(t("1/000") && t("1/001.p/17") && !t("1/001") && !t("1/001.p/18"));
        assert!(t("2/000.p/1") && !t("2/000") && !t("2/000.p/2"));
        assert!(!t("3/000.p/1") && !t("0/274.p/1"));
        assert!(t("entries/273.p/112") && t("entries/000"));
        // A tree of 256: a full level-0 tile and a partial level-1 tile of width 1.
        assert!(Tile::parse("0/000").unwrap().in_tree(256));
        assert!(Tile::parse("1/000.p/1").unwrap().in_tree(256));
        assert!(!Tile::parse("0/001.p/1").unwrap().in_tree(256));
        assert!(!Tile::parse("1/000.p/2").unwrap().in_tree(256));
        assert_eq!(Tile::parse("1/001.p/17").unwrap().nodes(), Some((8, 256, 273)));
        assert_eq!(Tile::parse("7/000.p/1").unwrap().needs(), Some(1 << 56));
        assert!(!Tile::parse("9/000.p/1").unwrap().in_tree(u64::MAX));
    }

    #[test]
    fn bundles_round_trip_and_refuse_what_does_not_fit() {
        let entries: [&[u8]; 3] = [b"a", b"", &[7u8; 300]];
        let b = bundle(entries).unwrap();
        assert_eq!(&b[..3], &[0, 1, b'a']);
        assert_eq!(unbundle(&b).unwrap(), entries.to_vec());
        assert!(bundle([&vec![0u8; 65_536][..]]).unwrap_err().contains("65536 bytes"));
        assert!(unbundle(&[0, 5, 1]).is_none());
    }
}
