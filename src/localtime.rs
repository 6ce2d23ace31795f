//! The local time zone, found as glibc's tzset(3) finds it, read once and kept.
//!
//! `TZ` unset: `/etc/localtime`. `TZ` empty: UTC. Otherwise, after an optional leading
//! `:`, a TZif file (an absolute path, or a name under `TZDIR` or `/usr/share/zoneinfo`),
//! and failing that a POSIX rule such as `CET-1CEST,M3.5.0,M10.5.0/3`. Anything else is
//! UTC, as in glibc.
//!
//! Why not jiff's own system zone: it looks the name up in its zoneinfo database, which
//! lists every one of the ~600 files under `/usr/share/zoneinfo` first. That walk was a
//! third of the idle broker's heap and 68 KiB of its resident memory, to name one zone.
//! Here the one file named is read and nothing else.
//!
//! The zone is found when first asked for (the broker's default Unix-seconds time stamp
//! never asks) and again after [`refresh`], which SIGHUP calls, so a gateway whose zone
//! was changed needs no restart.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};

const ZONEINFO: &str = "/usr/share/zoneinfo";
const LOCALTIME: &str = "/etc/localtime";

static ZONE: Mutex<Option<TimeZone>> = Mutex::new(None);
/// The most of a TZif file read (the largest in tzdata is under 4 KiB).
const MAX_TZIF: u64 = 1 << 20;

/// The current time in the local zone.
pub fn now() -> ZonedDateTime {
    at(Timestamp::now())
}

/// `t` in the local zone.
pub fn at(t: Timestamp) -> ZonedDateTime {
    t.to_zoned_datetime(zone())
}

/// The local zone (an `Arc` inside; cloning it is cheap).
pub fn zone() -> TimeZone {
    let mut guard = ZONE.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .get_or_insert_with(|| {
            let tz = std::env::var_os("TZ");
            let dir = std::env::var_os("TZDIR").map_or_else(|| ZONEINFO.into(), PathBuf::from);
            find(tz.as_deref(), &dir, Path::new(LOCALTIME))
        })
        .clone()
}

/// Forgets the zone; the next [`zone`] looks again.
pub fn refresh() {
    *ZONE.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// The zone `TZ` (or its absence) names, with `dir` the zoneinfo directory and
/// `localtime` the system's default.
fn find(tz: Option<&OsStr>, dir: &Path, localtime: &Path) -> TimeZone {
    let Some(tz) = tz else {
        return read_tzif(localtime, dir).unwrap_or(TimeZone::UTC);
    };
    let Some(tz) = tz.to_str() else {
        return TimeZone::UTC;
    };
    let tz = tz.strip_prefix(':').unwrap_or(tz);
    if tz.is_empty() {
        return TimeZone::UTC;
    }
    let file = if tz.starts_with('/') {
        PathBuf::from(tz)
    } else {
        dir.join(tz)
    };
    read_tzif(&file, dir)
        .or_else(|| TimeZone::posix(tz).ok())
        .unwrap_or(TimeZone::UTC)
}

/// The zone in the TZif file at `path`, named by its path under `dir` (following a
/// symbolic link such as `/etc/localtime -> /usr/share/zoneinfo/Europe/Berlin`).
fn read_tzif(path: &Path, dir: &Path) -> Option<TimeZone> {
    // TZif files are a few KiB; a bound keeps TZ=/dev/zero from reading forever.
    let mut data = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TZIF).read_to_end(&mut data))
        .ok()?;
    let target = std::fs::read_link(path).unwrap_or_else(|_| path.to_path_buf());
    let name = zone_name(&target, dir).unwrap_or("localtime");
    TimeZone::tzif(name, &data).ok()
}

/// `Europe/Berlin` of `/usr/share/zoneinfo/Europe/Berlin` or
/// `../usr/share/zoneinfo/Europe/Berlin`.
fn zone_name<'a>(path: &'a Path, dir: &Path) -> Option<&'a str> {
    if let Ok(rest) = path.strip_prefix(dir) {
        return rest.to_str();
    }
    let s = path.to_str()?;
    s.rfind("zoneinfo/").map(|i| &s[i + "zoneinfo/".len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TZif file of the test machine's zoneinfo, copied into `dir` as `name`.
    fn copy_zone(dir: &Path, name: &str) -> Option<PathBuf> {
        let from = Path::new(ZONEINFO).join(name);
        let data = std::fs::read(&from).ok()?;
        let to = dir.join(name);
        std::fs::create_dir_all(to.parent()?).ok()?;
        std::fs::write(&to, data).ok()?;
        Some(to)
    }

    fn offset_in_july(tz: &TimeZone) -> i32 {
        Timestamp::from_second(1_720_978_265)
            .unwrap()
            .to_zoned_datetime(tz.clone())
            .offset()
            .seconds()
    }

    /// A private zoneinfo directory with Europe/Berlin in it, built from a TZif file
    /// written here (two transitions are enough): the test needs no tzdata package.
    fn zoneinfo(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("culex-tz-{}-{test}", std::process::id()));
        std::fs::create_dir_all(dir.join("Europe")).unwrap();
        if copy_zone(&dir, "Europe/Berlin").is_none() {
            // No tzdata here: a POSIX-rule-only TZif v2 file says the same for 2024.
            std::fs::write(dir.join("Europe/Berlin"), tzif_v2_posix_only()).unwrap();
        }
        dir
    }

    /// A minimal TZif version 2 file with no transitions and the footer
    /// `CET-1CEST,M3.5.0,M10.5.0/3` (RFC 8536, section 3).
    fn tzif_v2_posix_only() -> Vec<u8> {
        let mut v = Vec::new();
        for _ in 0..2 {
            v.extend_from_slice(b"TZif2");
            v.extend_from_slice(&[0; 15]);
            // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
            for n in [0u32, 0, 0, 0, 1, 4] {
                v.extend_from_slice(&n.to_be_bytes());
            }
            v.extend_from_slice(&3600i32.to_be_bytes());
            v.extend_from_slice(&[0, 0]);
            v.extend_from_slice(b"CET\0");
        }
        v.extend_from_slice(b"\nCET-1CEST,M3.5.0,M10.5.0/3\n");
        v
    }

    #[test]
    fn tz_unset_reads_localtime_and_names_the_zone_from_its_link() {
        let dir = zoneinfo("unset");
        let link = dir.join("localtime");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(dir.join("Europe/Berlin"), &link).unwrap();
        let tz = find(None, &dir, &link);
        assert_eq!(tz.iana_name(), Some("Europe/Berlin"));
        assert_eq!(offset_in_july(&tz), 7200);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tz_names_a_file_under_the_zoneinfo_directory_with_or_without_colon() {
        let dir = zoneinfo("file");
        let missing = dir.join("no-localtime");
        for tz in ["Europe/Berlin", ":Europe/Berlin"] {
            let zone = find(Some(OsStr::new(tz)), &dir, &missing);
            assert_eq!(zone.iana_name(), Some("Europe/Berlin"), "TZ={tz}");
            assert_eq!(offset_in_july(&zone), 7200, "TZ={tz}");
        }
        let absolute = dir.join("Europe/Berlin");
        let zone = find(Some(absolute.as_os_str()), &dir, &missing);
        assert_eq!(offset_in_july(&zone), 7200);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tz_falls_back_to_a_posix_rule_then_to_utc() {
        let dir = zoneinfo("posix");
        let missing = dir.join("no-localtime");
        let posix = find(Some(OsStr::new("EST5EDT,M3.2.0,M11.1.0")), &dir, &missing);
        assert_eq!(offset_in_july(&posix), -4 * 3600);
        for tz in ["", ":", "Not/A_Zone", "%%%"] {
            let zone = find(Some(OsStr::new(tz)), &dir, &missing);
            assert_eq!(offset_in_july(&zone), 0, "TZ={tz:?}");
        }
        // A file that is not TZif, or never ends: UTC.
        let endless = find(Some(OsStr::new("/dev/zero")), &dir, &missing);
        assert_eq!(offset_in_july(&endless), 0);
        // No TZ and no /etc/localtime: UTC, as glibc.
        assert_eq!(offset_in_july(&find(None, &dir, &missing)), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_tzif_written_where_tzdata_is_missing_is_berlin() {
        let tz = TimeZone::tzif("Europe/Berlin", &tzif_v2_posix_only()).unwrap();
        assert_eq!(offset_in_july(&tz), 7200);
    }

    #[test]
    fn zone_names_come_from_the_path_under_zoneinfo() {
        let dir = Path::new("/usr/share/zoneinfo");
        let name = |p: &'static str| zone_name(Path::new(p), dir);
        assert_eq!(
            name("/usr/share/zoneinfo/Europe/Berlin"),
            Some("Europe/Berlin")
        );
        assert_eq!(name("../usr/share/zoneinfo/UTC"), Some("UTC"));
        assert_eq!(name("/etc/localtime"), None);
    }
}
