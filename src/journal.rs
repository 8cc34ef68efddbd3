//! The send journal: what each delivery worker put on the wire, written to a
//! file as it happens, so that a daemon killed mid-send (`kill -9`, a crash,
//! the watchdog) leaves exact knowledge behind instead of whole batches of
//! `sending` rows that can only become `unknown`.
//!
//! Per message, one line is appended right before its data goes out
//! (`wire`) and one with its outcome once the server replied (`result`);
//! each is one `write`, never synced: the kernel keeps it through a process
//! crash, not through a power loss (see docs/sending.md). Results reach the
//! database later, in group commits; the journal covers the gap.
//!
//! The next start reconciles every journal whose daemon is gone (its files
//! are no longer locked) before anything is claimed: results are recorded,
//! messages on the wire without a reply become `unknown`, and the daemon's
//! other claims go back to `planned` — only if the machine has not rebooted
//! since the journal was written (lines not yet on disk may then be
//! missing, and with them a message that went out). Every step changes only
//! rows still claimed by the dead daemon, so a reconciliation cut short is
//! simply done again; the files are removed last.
//!
//! Files: `<instance>.<n>.journal` (0600) in a folder of 0700, a new `n`
//! once a file passes [`ROTATE_AT`]; a file is removed once everything
//! written to it is committed. Each line is JSON.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::Settings;
use crate::store::{Outcome, Store};

/// A journal file larger than this is followed by a new one.
pub const ROTATE_AT: u64 = 1 << 20;
const SUFFIX: &str = ".journal";
/// The `kv` key of the database's identity: a journal is reconciled only
/// into the database it was written for.
const DATABASE_ID: &str = "database_id";

/// Where the journal lives: `mail.journal_dir`, else `journal` beside the
/// SQLite file, else `journal` in systemd's state directory (or `data/` in
/// the working directory).
pub fn dir(settings: &Settings, store: &Store) -> PathBuf {
    if let Some(dir) = &settings.mail.journal_dir {
        return dir.clone();
    }
    if let Some(file) = store.sqlite_file() {
        let parent = file.parent().unwrap_or(Path::new(""));
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        return parent.join("journal");
    }
    match std::env::var_os("STATE_DIRECTORY") {
        // systemd may list several, separated by ':'; the first is ours.
        Some(state) => {
            let first = state
                .to_string_lossy()
                .split(':')
                .next()
                .unwrap_or("")
                .to_string();
            Path::new(&first).join("journal")
        }
        None => PathBuf::from("data/journal"),
    }
}

/// This database's identity, made on first use.
pub async fn database_id(store: &Store) -> Result<String> {
    let fresh = format!("{:032x}", rand::random::<u128>());
    store
        .kv_get_or_insert(DATABASE_ID, &fresh)
        .await
        .context("reading the database identity for the send journal")
}

/// Which boot of the machine this is. The kernel's boot id where `/proc/sys`
/// is visible; under the shipped unit (`ProcSubset=pid`) it is not, and the
/// time the machine booted stands in, from the wall and boot clocks.
pub fn boot() -> Option<String> {
    if let Ok(id) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") {
        let id = id.trim();
        if !id.is_empty() {
            return Some(id.to_string());
        }
    }
    let (wall, since_boot) = (clock(libc::CLOCK_REALTIME)?, clock(libc::CLOCK_BOOTTIME)?);
    Some(format!("booted-at:{}", wall - since_boot))
}

#[allow(unsafe_code)]
fn clock(id: libc::clockid_t) -> Option<i64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    (unsafe { libc::clock_gettime(id, &mut ts) } == 0).then_some(ts.tv_sec)
}

/// Whether two [`boot`] values name the same boot. Boot times computed from
/// the clocks wobble by a second, and a clock step moves them: a step reads
/// as a reboot, which errs on the safe side.
pub fn same_boot(a: Option<&str>, b: Option<&str>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return false;
    };
    match (a.strip_prefix("booted-at:"), b.strip_prefix("booted-at:")) {
        (Some(a), Some(b)) => match (a.parse::<i64>(), b.parse::<i64>()) {
            (Ok(a), Ok(b)) => (a - b).abs() <= 2,
            _ => false,
        },
        (None, None) => a == b,
        _ => false,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    instance: String,
    database: String,
    boot: Option<String>,
}

/// One line of a journal file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Header(Header),
    /// The message's data is about to go out.
    Wire(i64),
    /// The server's reply, or why the message was not sent.
    Result {
        id: i64,
        #[serde(flatten)]
        outcome: Outcome,
    },
}

/// One journal file, shared by the workers writing to it and the batches
/// whose results are not committed yet; removed when the last of them lets
/// go (unless something uncommitted was abandoned: see [`Segment::keep`]).
pub struct Segment {
    path: PathBuf,
    file: Mutex<File>,
    size: AtomicU64,
    keep: AtomicBool,
}

impl Segment {
    fn create(dir: &Path, header: &Header, n: u64) -> Result<Segment> {
        let path = dir.join(format!("{}.{n}{SUFFIX}", header.instance));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create the send journal {}", path.display()))?;
        lock(&file)
            .with_context(|| format!("cannot lock the send journal {}", path.display()))?
            .then_some(())
            .with_context(|| {
                format!(
                    "the send journal {} is locked by another process",
                    path.display()
                )
            })?;
        let segment = Segment {
            path,
            file: Mutex::new(file),
            size: AtomicU64::new(0),
            keep: AtomicBool::new(false),
        };
        segment.write(&Line::Header(header.clone()))?;
        // Once per file, so that after a power loss the header (and with it
        // the boot it was written in) is there: without it, nothing in the
        // file is trusted to be complete.
        segment
            .file
            .lock()
            .expect("journal file lock")
            .sync_all()
            .with_context(|| format!("cannot sync the send journal {}", segment.path.display()))?;
        Ok(segment)
    }

    fn write(&self, line: &Line) -> Result<()> {
        let mut bytes = serde_json::to_vec(line).expect("a journal line serializes");
        bytes.push(b'\n');
        // One `write` of the whole line to a file opened for appending.
        self.file
            .lock()
            .expect("journal file lock")
            .write_all(&bytes)
            .with_context(|| format!("cannot write to the send journal {}", self.path.display()))?;
        self.size.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Written right before the message's data goes out. If it fails the
    /// message must not be sent: a crash would then hide that it was.
    pub fn wire(&self, id: i64) -> Result<()> {
        self.write(&Line::Wire(id))
    }

    /// The outcome, before it goes to the recorder.
    pub fn result(&self, id: i64, outcome: &Outcome) -> Result<()> {
        self.write(&Line::Result {
            id,
            outcome: outcome.clone(),
        })
    }

    /// Leaves the file for the next start to reconcile: results written to
    /// it will not be committed by this process.
    pub fn keep(&self) {
        self.keep.store(true, Ordering::Relaxed);
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // Dropped in a panic, the batch's results may not be committed.
        if !self.keep.load(Ordering::Relaxed) && !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The journal of this daemon: the file being written, and the next number.
pub struct Journal {
    dir: PathBuf,
    header: Header,
    next: AtomicU64,
    current: Mutex<Option<Arc<Segment>>>,
}

impl Journal {
    /// Creates this daemon's first journal file in `dir` (created 0700 if missing).
    pub fn open(dir: &Path, instance: &str, database: &str) -> Result<Journal> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the send journal folder {}", dir.display()))?;
        let header = Header {
            instance: instance.to_string(),
            database: database.to_string(),
            boot: boot(),
        };
        let first = Segment::create(dir, &header, 0)?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            header,
            next: AtomicU64::new(1),
            current: Mutex::new(Some(Arc::new(first))),
        })
    }

    /// The file a batch about to be sent writes to; held until its results are committed.
    pub fn segment(&self) -> Option<Arc<Segment>> {
        self.current.lock().expect("journal lock").clone()
    }

    /// Starts a new file once the current one is large; the old one goes
    /// when the batches still holding it are committed.
    pub fn rotate_if_large(&self) {
        let mut current = self.current.lock().expect("journal lock");
        if current
            .as_ref()
            .is_none_or(|s| s.size.load(Ordering::Relaxed) < ROTATE_AT)
        {
            return;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        match Segment::create(&self.dir, &self.header, n) {
            Ok(segment) => *current = Some(Arc::new(segment)),
            Err(e) => {
                warn!(error = %format!("{e:#}"), "cannot start a new send journal file; the current one grows")
            }
        }
    }

    /// At a clean stop, after every result was committed: the file goes.
    /// One still held by a batch stays for the next start.
    pub fn close(&self) {
        if let Some(segment) = self.current.lock().expect("journal lock").take()
            && Arc::strong_count(&segment) > 1
        {
            segment.keep();
        }
    }
}

/// Takes an exclusive lock without waiting; false if another process holds it.
#[allow(unsafe_code)]
fn lock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a file descriptor this `File` owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

/// What the journals of stopped daemons came to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Daemons whose journals were reconciled.
    pub daemons: usize,
    /// Results recorded from the journal (sent, failed, …).
    pub recorded: u64,
    /// On the wire without a reply: `unknown`.
    pub unknown: u64,
    /// Claimed, never on the wire: back to `planned`.
    pub given_back: u64,
    /// Daemons whose journal was written before the machine rebooted: their
    /// other claims are left to become `unknown` as without a journal.
    pub rebooted: usize,
}

/// What one stopped daemon's files say.
#[derive(Default)]
struct Found {
    files: Vec<(PathBuf, File)>,
    header: Option<Header>,
    /// Each message's last line: its outcome, or `None` if that was `wire`
    /// (a message retried later is claimed, and written, again).
    last: BTreeMap<i64, Option<Outcome>>,
    alive: bool,
}

/// Reconciles into the database every journal in `dir` of a daemon that is
/// no longer running (its files unlocked) and was writing to this database.
/// Safe to run again after it was cut short.
pub async fn reconcile(store: &Store, dir: &Path, database: &str) -> Result<Reconciled> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Reconciled::default()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read the send journal folder {}", dir.display()));
        }
    };
    // (instance, file number) → path: a daemon's files are read in the
    // order they were written, so that a message's last line counts.
    let mut paths: BTreeMap<(String, u64), PathBuf> = BTreeMap::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read the send journal folder {}", dir.display()))?
            .path();
        let Some((instance, n)) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.rsplit_once('.'))
            .and_then(|(instance, n)| Some((instance.to_string(), n.parse::<u64>().ok()?)))
        else {
            continue;
        };
        paths.insert((instance, n), path);
    }
    let mut daemons: HashMap<String, Found> = HashMap::new();
    for ((instance, _), path) in paths {
        let found = daemons.entry(instance).or_default();
        if found.alive {
            continue;
        }
        let file = OpenOptions::new()
            .read(true)
            .open(&path)
            .with_context(|| format!("cannot open the send journal {}", path.display()))?;
        if !lock(&file)
            .with_context(|| format!("cannot lock the send journal {}", path.display()))?
        {
            found.alive = true;
            continue;
        }
        read_lines(&file, &path, found)?;
        found.files.push((path, file));
    }
    let mut summary = Reconciled::default();
    let now_boot = boot();
    for (instance, found) in daemons {
        if found.alive {
            continue;
        }
        if let Some(header) = &found.header
            && header.database != database
        {
            // Another database's daemon shares the folder: its own next start reconciles it.
            continue;
        }
        let (mut results, mut on_wire) = (Vec::new(), Vec::new());
        for (id, last) in found.last {
            match last {
                Some(outcome) => results.push((id, outcome)),
                None => on_wire.push(id),
            }
        }
        summary.recorded += store
            .record_outcomes(&instance, &results, Utc::now())
            .await
            .with_context(|| format!("recording the send journal of {instance}"))?;
        summary.unknown += store
            .mark_claims_unknown(
                &instance,
                &on_wire,
                "the daemon stopped while this message was being sent; not resent automatically",
            )
            .await?;
        let header_boot = found.header.as_ref().and_then(|h| h.boot.as_deref());
        if same_boot(header_boot, now_boot.as_deref()) {
            summary.given_back += store.release_all_claims(&instance).await?;
        } else {
            summary.rebooted += 1;
        }
        summary.daemons += 1;
        for (path, _) in &found.files {
            std::fs::remove_file(path).with_context(|| {
                format!(
                    "cannot remove the reconciled send journal {}",
                    path.display()
                )
            })?;
        }
    }
    if summary.daemons > 0 {
        info!(
            daemons = summary.daemons,
            recorded = summary.recorded,
            unknown = summary.unknown,
            given_back = summary.given_back,
            "send journal of a stopped daemon reconciled: results recorded, messages on the wire marked unknown, the rest given back"
        );
    }
    if summary.rebooted > 0 {
        warn!(
            daemons = summary.rebooted,
            "a send journal predates a reboot and may miss its last lines: its unsettled claims are not given back"
        );
    }
    Ok(summary)
}

/// Reads one file's lines into `found`. A line that does not parse (the
/// tail of a file cut by a power loss) is skipped.
fn read_lines(file: &File, path: &Path, found: &mut Found) -> Result<()> {
    for line in BufReader::new(file).split(b'\n') {
        let line =
            line.with_context(|| format!("cannot read the send journal {}", path.display()))?;
        match serde_json::from_slice::<Line>(&line) {
            Ok(Line::Header(header)) => found.header = Some(header),
            Ok(Line::Wire(id)) => {
                found.last.insert(id, None);
            }
            Ok(Line::Result { id, outcome }) => {
                found.last.insert(id, Some(outcome));
            }
            Err(_) => {}
        }
    }
    Ok(())
}
