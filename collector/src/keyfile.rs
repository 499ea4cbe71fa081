//! The daily salts of the visitor hash, in a key file beside the database
//! (`<db>.salts`), never in it: a copy of the DuckDB file holds visitor ids but not
//! the salt they were hashed with, so it cannot be turned back into IP addresses by
//! trying every address. The store's writer reads and writes the file (one at a
//! time), [`crate::ingest`] asks it once a day and keeps the salt in memory.
//!
//! The file holds today's and yesterday's salts only, one `DAY HEX` line each (days
//! since the epoch, 32 random bytes); older ones are deleted, so a day's visitor ids
//! cannot be recomputed once it is two days old. It is written whole, to a
//! temporary file first (mode 0600, synced, then renamed), so a crash leaves the
//! old file or the new one. A damaged or deleted file gives new salts: visitor ids
//! change once, nothing else is lost.

use std::{
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
};

/// The key file of the database at `db`.
pub fn path_for(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".salts");
    PathBuf::from(name)
}

/// The salt of `day` from the key file `path`, or `fresh` stored for it; salts
/// older than yesterday are deleted.
pub fn salt_for_day(path: &Path, day: i64, fresh: [u8; 32]) -> io::Result<[u8; 32]> {
    let held = read(path)?;
    let mut kept: Vec<(i64, [u8; 32])> = held
        .iter()
        .copied()
        .filter(|&(d, _)| d >= day - 1 && d <= day)
        .collect();
    let salt = if let Some(&(_, s)) = kept.iter().find(|(d, _)| *d == day) {
        s
    } else {
        kept.push((day, fresh));
        fresh
    };
    if kept != held {
        write(path, &kept)?;
    }
    Ok(salt)
}

/// The salts in the file (none when there is no file); a line that cannot be read
/// is left out.
fn read(path: &Path) -> io::Result<Vec<(i64, [u8; 32])>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let (day, hex) = line.trim().split_once(' ')?;
            let day = day.parse().ok()?;
            let mut salt = [0u8; 32];
            if hex.len() != 64 {
                return None;
            }
            for (i, b) in salt.iter_mut().enumerate() {
                *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some((day, salt))
        })
        .collect())
}

/// Replaces the file with `salts`: a temporary file (mode 0600), synced, renamed.
fn write(path: &Path, salts: &[(i64, [u8; 32])]) -> io::Result<()> {
    use std::fmt::Write as _;
    let mut text = String::new();
    for (day, salt) in salts {
        let _ = write!(text, "{day} ");
        for b in salt {
            let _ = write!(text, "{b:02x}");
        }
        text.push('\n');
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself, on disk.
        let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_today_and_yesterday_only_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("events.duckdb"));
        assert!(path.ends_with("events.duckdb.salts"));
        let a = salt_for_day(&path, 100, [1; 32]).unwrap();
        assert_eq!(a, [1; 32]);
        assert_eq!(salt_for_day(&path, 100, [2; 32]).unwrap(), [1; 32], "kept");
        assert_eq!(salt_for_day(&path, 101, [3; 32]).unwrap(), [3; 32]);
        assert_eq!(read(&path).unwrap(), vec![(100, [1; 32]), (101, [3; 32])]);
        assert_eq!(salt_for_day(&path, 102, [4; 32]).unwrap(), [4; 32]);
        assert_eq!(
            read(&path).unwrap(),
            vec![(101, [3; 32]), (102, [4; 32])],
            "the day before yesterday is deleted"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A damaged file gives a new salt.
        fs::write(&path, "garbage\n102 zz\n").unwrap();
        assert_eq!(salt_for_day(&path, 102, [5; 32]).unwrap(), [5; 32]);
    }
}
