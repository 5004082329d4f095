//! The SQLite driver.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rusqlite::types::Type;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};

use crate::error::{Result, StoreError};
use crate::migrations;
use crate::model::{
    AgentFilter, AgentPatch, AgentRecord, AgentStatus, EventRecord, Mode, NewEvent, TaskRecord,
    TransitionWrite, Usage, UsageRecord, new_id,
};
use crate::{Store, blocking};

/// How long a connection waits for another writer before failing.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Maximum number of matches reported for an ambiguous id prefix.
const MAX_AMBIGUOUS: usize = 10;

/// Idle read connections kept for reuse; more are opened while more reads overlap, and
/// those beyond this many are closed after their read.
const MAX_IDLE_READERS: usize = 4;

/// A SQLite-backed [`Store`]: one write connection behind a mutex, and (for a database file)
/// a small pool of read-only connections, so that a read never waits behind a write that
/// waits for the database's write lock (in WAL mode readers proceed while a writer writes).
///
/// A read runs on the write connection when that is free (a command that only reads opens
/// one connection, as before), else on a pooled read connection. An in-memory store has its
/// write connection only: its reads wait for a write in progress.
#[derive(Debug)]
pub struct SqliteStore {
    // Declared (so dropped) before `conn`: the write connection closes last and does the
    // final checkpoint.
    readers: Option<Readers>,
    conn: Mutex<Connection>,
    path: String,
    /// A spawn's record, to be written with the next write
    /// ([`Store::insert_agent_of_task_with_next_write`]).
    pending: Mutex<Option<(TaskRecord, AgentRecord)>>,
}

/// The read connections of a file-backed store, opened on demand.
#[derive(Debug)]
struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// An idle read connection, or a new one.
    fn take(&self) -> rusqlite::Result<Connection> {
        if let Some(conn) = self.idle_list().pop() {
            return Ok(conn);
        }
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(self.busy_timeout)?;
        conn.set_prepared_statement_cache_capacity(64);
        stable_plans(&conn)?;
        // Should this connection be the last one to close, it keeps the WAL files too.
        keep_wal_files(&conn)?;
        conn.pragma_update(None, "query_only", "ON")?;
        Ok(conn)
    }

    /// Give a connection back after a read.
    fn put(&self, conn: Connection) {
        let mut idle = self.idle_list();
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }

    fn idle_list(&self) -> MutexGuard<'_, Vec<Connection>> {
        // Held only to push or pop; a panic cannot leave the list inconsistent.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Internal error: either a raw SQLite error (gets the db path attached at
/// the API boundary) or an already-formed store error.
enum E {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for E {
    fn from(e: rusqlite::Error) -> Self {
        E::Sql(e)
    }
}

impl From<StoreError> for E {
    fn from(e: StoreError) -> Self {
        E::Store(e)
    }
}

impl From<serde_json::Error> for E {
    fn from(e: serde_json::Error) -> Self {
        E::Store(StoreError::Serde(e))
    }
}

type R<T> = std::result::Result<T, E>;

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

impl SqliteStore {
    /// Open (create, configure, migrate) the database at `path`, creating
    /// parent directories.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with_timeout(path, DEFAULT_BUSY_TIMEOUT)
    }

    /// Like [`SqliteStore::open`] with a custom busy timeout.
    pub fn open_with_timeout(path: impl AsRef<Path>, busy_timeout: Duration) -> Result<Self> {
        // Opening may wait for another process's lock (the switch to WAL, a migration).
        blocking(|| Self::open_blocking(path.as_ref(), busy_timeout))
    }

    fn open_blocking(path: &Path, busy_timeout: Duration) -> Result<Self> {
        let display = path.display().to_string();
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let sql = |source| StoreError::Sqlite {
            path: display.clone(),
            source,
        };
        configure_library();
        let conn = Connection::open(path).map_err(sql)?;
        let readers = Readers {
            path: path.to_path_buf(),
            busy_timeout,
            idle: Mutex::new(Vec::new()),
        };
        Self::configure(conn, display.clone(), busy_timeout, Some(readers))
    }

    /// A private in-memory database (for tests of other crates): one connection, so its reads
    /// wait for a write in progress.
    pub fn open_in_memory() -> Result<Self> {
        let display = ":memory:".to_owned();
        configure_library();
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Sqlite {
            path: display.clone(),
            source,
        })?;
        Self::configure(conn, display, DEFAULT_BUSY_TIMEOUT, None)
    }

    /// Configure and migrate the write connection; a database file (`readers`) is put in WAL
    /// mode.
    fn configure(
        mut conn: Connection,
        path: String,
        busy_timeout: Duration,
        readers: Option<Readers>,
    ) -> Result<Self> {
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        conn.busy_timeout(busy_timeout).map_err(sql)?;
        // Every statement the store runs is prepared once per connection (`prepare_cached`);
        // room for all of them, so none is parsed again.
        conn.set_prepared_statement_cache_capacity(64);
        stable_plans(&conn).map_err(sql)?;
        if readers.is_some() {
            keep_wal_files(&conn).map_err(sql)?;
            set_wal(&conn, busy_timeout).map_err(sql)?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        migrations::migrate(&mut conn, &path)?;
        Ok(SqliteStore {
            readers,
            conn: Mutex::new(conn),
            path,
            pending: Mutex::new(None),
        })
    }

    /// The database path.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open
        // (rusqlite rolls back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finish<T>(&self, r: R<T>) -> Result<T> {
        r.map_err(|e| match e {
            E::Sql(source) => StoreError::Sqlite {
                path: self.path.clone(),
                source,
            },
            E::Store(e) => e,
        })
    }

    /// Run `f` in a `BEGIN IMMEDIATE` transaction (takes the write lock up
    /// front, waiting up to the busy timeout), committing on success.
    fn write<T>(&self, f: impl FnOnce(&Connection) -> R<T>) -> Result<T> {
        blocking(|| {
            let mut conn = self.lock();
            // A record held back for this write goes in first, in its transaction; should the
            // transaction fail, it waits for the next one.
            let pending = self.pending_slot().take();
            let r = in_transaction(&mut conn, TransactionBehavior::Immediate, |tx| {
                if let Some((task, agent)) = &pending {
                    write_task(tx, task)?;
                    insert_new_agent(tx, agent)?;
                }
                f(tx)
            });
            if r.is_err()
                && let Some(p) = pending
            {
                self.pending_slot().get_or_insert(p);
            }
            self.finish(r)
        })
    }

    fn pending_slot(&self) -> MutexGuard<'_, Option<(TaskRecord, AgentRecord)>> {
        // Held only to take or put the record back: a panic cannot leave it half-changed.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write a record held back for the next write now (before a read, or at the end).
    fn write_pending(&self) -> Result<()> {
        if self.pending_slot().is_none() {
            return Ok(());
        }
        self.write(|_| Ok(()))
    }

    /// Run `f` in a read (deferred) transaction, for a consistent snapshot: on the write
    /// connection if it is free, else on a read connection, so a read never waits for a write
    /// (nor for the write lock that write waits for).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> R<T>) -> Result<T> {
        // What was recorded is read back, on any connection.
        self.write_pending()?;
        blocking(|| {
            let writer = match self.conn.try_lock() {
                Ok(conn) => Some(conn),
                Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            let deferred = TransactionBehavior::Deferred;
            let r = match (writer, &self.readers) {
                (Some(mut conn), _) => in_transaction(&mut conn, deferred, f),
                (None, Some(readers)) => match readers.take() {
                    Ok(mut conn) => {
                        let r = in_transaction(&mut conn, deferred, f);
                        readers.put(conn);
                        r
                    }
                    Err(e) => Err(E::Sql(e)),
                },
                (None, None) => in_transaction(&mut self.lock(), deferred, f),
            };
            self.finish(r)
        })
    }
}

/// Run `f` in a transaction of `conn`, committing on success (a failure rolls back).
///
/// `BEGIN` and `COMMIT` are cached statements of the connection: a spawn runs some thirty
/// transactions, and rusqlite's own `Transaction` compiles both anew each time.
fn in_transaction<T>(
    conn: &mut Connection,
    behavior: TransactionBehavior,
    f: impl FnOnce(&Connection) -> R<T>,
) -> R<T> {
    let begin = match behavior {
        TransactionBehavior::Immediate => "BEGIN IMMEDIATE",
        TransactionBehavior::Exclusive => "BEGIN EXCLUSIVE",
        _ => "BEGIN DEFERRED",
    };
    conn.prepare_cached(begin)?.execute([])?;
    // Rolls back unless committed: on an error, and on a panic in `f`.
    let open = Open(conn);
    let v = f(open.0)?;
    open.0.prepare_cached("COMMIT")?.execute([])?;
    Ok(v)
}

/// A transaction begun on the connection: rolled back when dropped, unless it has ended.
struct Open<'c>(&'c Connection);

impl Drop for SqliteStore {
    /// A record still held back for a next write is written now.
    fn drop(&mut self) {
        if let Err(e) = self.write_pending() {
            tracing::warn!("could not record an agent held back for the next write: {e}");
        }
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

/// Keep `state.db-wal` and `state.db-shm` when the last connection closes, and leave the
/// WAL as it is: no checkpoint on close. Every `fracta` command opens and closes the database.
/// With the files deleted at each close, each command created both again (~0.8 ms of a `spawn`
/// of an instant CLI); with a checkpoint at each close, each command paid two `fsync`s for it
/// (WAL, then database; 3–20 ms on this machine's disk), and the next command's first write
/// restarted the WAL and paid two more (its header, then the folder). Now the WAL carries over
/// from command to command and SQLite's automatic checkpoint (`wal_autocheckpoint`, in a
/// commit once the WAL holds that many pages) moves it into `state.db` now and then. Nothing
/// is less durable: a commit in WAL mode with `synchronous = NORMAL` was never synced; a
/// crash or power loss keeps what the WAL holds, as before.
/// Pages in the WAL before a commit checkpoints it into `state.db`. Smaller than SQLite's
/// default (1000): the first command after the last connection closed rebuilds the WAL index by
/// reading the whole WAL, so its size bounds that read (256 pages: 1 MiB).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 256;

/// A cached statement keeps its query plan whatever values are bound to it. Without this,
/// SQLite marks a statement whose plan looked at a bound value (the events' `MAX(seq)` of an
/// agent, say) to be compiled again at each new binding: a spawn compiled that one statement
/// once per event it recorded.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map(|_| ())
}

/// SQLite's process-wide memory settings, made once before its first connection (SQLite
/// refuses them after it has initialised; they only tune, so a refusal changes nothing else).
///
/// - No bulk page cache: by default each connection's first page read allocates room for 20
///   pages at once and writes a header into each, touching 20 fresh pages of memory. Pages
///   are now allocated as they are read.
/// - No lookaside: by default each connection sets aside 48 KiB for small allocations and
///   threads a free list through all of it. Small allocations now come from `malloc`.
///
/// Each fresh page costs a page fault (~3 µs on a 2-core VM). A `fracta spawn` opens one
/// connection and reads a dozen pages: 580 → 535 faults for the whole process.
fn configure_library() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use rusqlite::ffi;
        use std::ffi::{c_int, c_void};
        // SAFETY: called once, before this process's first connection (rusqlite initialises
        // SQLite in its first `Connection::open`); SQLITE_CONFIG_PAGECACHE takes a pointer
        // and two ints (a null buffer, no pages), SQLITE_CONFIG_LOOKASIDE two ints.
        let rc = unsafe {
            [
                ffi::sqlite3_config(
                    ffi::SQLITE_CONFIG_PAGECACHE,
                    std::ptr::null_mut::<c_void>(),
                    0 as c_int,
                    0 as c_int,
                ),
                ffi::sqlite3_config(ffi::SQLITE_CONFIG_LOOKASIDE, 0 as c_int, 0 as c_int),
            ]
        };
        if rc.iter().any(|&c| c != ffi::SQLITE_OK) {
            tracing::debug!(
                ?rc,
                "SQLite's memory settings were refused (already initialised)"
            );
        }
    });
}

fn keep_wal_files(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::ffi;
    let mut on: std::ffi::c_int = 1;
    // SAFETY: `conn.handle()` is the live `sqlite3*` of this open connection, used on this
    // thread only for the call; "main" is a NUL-terminated C string; for
    // SQLITE_FCNTL_PERSIST_WAL SQLite reads and writes one `int` through the last argument,
    // which points at `on`, alive for the whole call.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&raw mut on).cast(),
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(rc),
            Some("could not set SQLITE_FCNTL_PERSIST_WAL".into()),
        ));
    }
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    // A WAL larger than this is truncated to it when a checkpoint has emptied it and writing
    // starts again at its head. Above what the checkpoint above lets it reach (256 frames of
    // 4 KiB and their headers, a little over 1 MiB), so it is reused, not truncated: a limit
    // of 1 MiB truncated it at every sixth spawn or so, and where the file system discards
    // freed blocks that `ftruncate` waited 1–2 ms for the disk. One large write (a prune)
    // still leaves at most this much behind.
    conn.pragma_update(None, "journal_size_limit", 4 << 20)
}

/// Switch to WAL, retrying while another process holds a lock (the
/// journal-mode change needs an exclusive lock, and a concurrent first open
/// may race us).
fn set_wal(conn: &Connection, timeout: Duration) -> rusqlite::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = conn
            .pragma_query_value(None, "journal_mode", |r| r.get::<_, String>(0))
            .and_then(|mode| {
                if mode.eq_ignore_ascii_case("wal") {
                    Ok(mode)
                } else {
                    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| {
                        r.get::<_, String>(0)
                    })
                }
            });
        match r {
            Ok(mode) => {
                if !mode.eq_ignore_ascii_case("wal") {
                    tracing::warn!(mode, "state database did not switch to WAL journal mode");
                }
                return Ok(());
            }
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------------------
// value conversions

/// Fixed-width RFC 3339 (nine fractional digits), so text order is time order.
fn ts(t: &Timestamp) -> String {
    format!("{t:.9}")
}

fn ts_opt(t: &Option<Timestamp>) -> Option<String> {
    t.as_ref().map(ts)
}

fn conv_err(idx: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e))
}

fn get_ts(row: &Row<'_>, idx: usize) -> rusqlite::Result<Timestamp> {
    let s: String = row.get(idx)?;
    s.parse::<Timestamp>().map_err(|e| conv_err(idx, e))
}

fn get_ts_opt(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Timestamp>> {
    let s: Option<String> = row.get(idx)?;
    s.map(|s| s.parse::<Timestamp>().map_err(|e| conv_err(idx, e)))
        .transpose()
}

fn get_json<T: serde::de::DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let s: String = row.get(idx)?;
    serde_json::from_str(&s).map_err(|e| conv_err(idx, e))
}

fn get_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    Ok(u64::try_from(v).unwrap_or(0))
}

fn get_u32(row: &Row<'_>, idx: usize) -> rusqlite::Result<u32> {
    let v: i64 = row.get(idx)?;
    Ok(u32::try_from(v).unwrap_or(0))
}

fn get_enum<T: std::str::FromStr<Err = StoreError>>(
    row: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    let s: String = row.get(idx)?;
    s.parse::<T>().map_err(|e| conv_err(idx, e))
}

/// u64 → SQLite INTEGER (saturating at i64::MAX).
fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn json<T: serde::Serialize>(v: &T) -> R<String> {
    Ok(serde_json::to_string(v)?)
}

// ---------------------------------------------------------------------------
// agents

const AGENT_COLS: &str = "id, parent_id, root_id, depth, task, runtime, adapter, mode, model, \
     status, prompt, resume_token, workspace, branch, runtime_home, pid, process_start, host, \
     exit_code, signal, error, result, input_tokens, output_tokens, cached_tokens, cost_usd, \
     created_at, started_at, ended_at, updated_at, meta";

fn agent_from_row(row: &Row<'_>) -> rusqlite::Result<AgentRecord> {
    Ok(AgentRecord {
        id: row.get(0)?,
        parent_id: row.get(1)?,
        root_id: row.get(2)?,
        depth: get_u32(row, 3)?,
        task: row.get(4)?,
        runtime: row.get(5)?,
        adapter: row.get(6)?,
        mode: get_enum::<Mode>(row, 7)?,
        model: row.get(8)?,
        status: get_enum::<AgentStatus>(row, 9)?,
        prompt: row.get(10)?,
        resume_token: row.get(11)?,
        workspace: row.get(12)?,
        branch: row.get(13)?,
        runtime_home: row.get(14)?,
        pid: row.get(15)?,
        process_start: row.get(16)?,
        host: row.get(17)?,
        exit_code: row.get(18)?,
        signal: row.get(19)?,
        error: row.get(20)?,
        result: row.get(21)?,
        usage: Usage {
            input_tokens: get_u64(row, 22)?,
            output_tokens: get_u64(row, 23)?,
            cached_tokens: get_u64(row, 24)?,
        },
        cost_usd: row.get(25)?,
        created_at: get_ts(row, 26)?,
        started_at: get_ts_opt(row, 27)?,
        ended_at: get_ts_opt(row, 28)?,
        updated_at: get_ts(row, 29)?,
        meta: get_json(row, 30)?,
    })
}

/// Insert (`insert = true`) or overwrite the row of `a`. An overwrite leaves the columns an
/// agent is given once alone (its parent, root and creation time): setting them, even to the
/// same values, rewrites their index entries, three index pages more per write.
fn write_agent(tx: &Connection, a: &AgentRecord, insert: bool) -> R<()> {
    let meta = json(&a.meta)?;
    let sql = if insert {
        format!(
            "INSERT INTO agents ({AGENT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
             ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, \
             ?27, ?28, ?29, ?30, ?31)"
        )
    } else {
        // ?2, ?3 and ?27 (parent, root, created) are bound but not set: `rmw` keeps them.
        "UPDATE agents SET depth = ?4, task = ?5, runtime = ?6, \
         adapter = ?7, mode = ?8, model = ?9, status = ?10, prompt = ?11, resume_token = ?12, \
         workspace = ?13, branch = ?14, runtime_home = ?15, pid = ?16, process_start = ?17, \
         host = ?18, exit_code = ?19, signal = ?20, error = ?21, result = ?22, \
         input_tokens = ?23, output_tokens = ?24, cached_tokens = ?25, cost_usd = ?26, \
         started_at = ?28, ended_at = ?29, updated_at = ?30, meta = ?31 \
         WHERE id = ?1"
            .to_owned()
    };
    let n = tx.prepare_cached(&sql)?.execute(rusqlite::params![
        a.id,
        a.parent_id,
        a.root_id,
        i64::from(a.depth),
        a.task,
        a.runtime,
        a.adapter,
        a.mode.as_str(),
        a.model,
        a.status.as_str(),
        a.prompt,
        a.resume_token,
        a.workspace,
        a.branch,
        a.runtime_home,
        a.pid,
        a.process_start,
        a.host,
        a.exit_code,
        a.signal,
        a.error,
        a.result,
        i(a.usage.input_tokens),
        i(a.usage.output_tokens),
        i(a.usage.cached_tokens),
        a.cost_usd,
        ts(&a.created_at),
        ts_opt(&a.started_at),
        ts_opt(&a.ended_at),
        ts(&a.updated_at),
        meta,
    ])?;
    if n == 0 {
        return Err(StoreError::NotFound { id: a.id.clone() }.into());
    }
    Ok(())
}

fn load_agent(tx: &Connection, id: &str) -> R<AgentRecord> {
    tx.prepare_cached(&format!("SELECT {AGENT_COLS} FROM agents WHERE id = ?1"))?
        .query_row([id], agent_from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound { id: id.to_owned() }.into())
}

fn agent_exists(tx: &Connection, id: &str) -> R<bool> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM agents WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

fn require_agent(tx: &Connection, id: &str) -> R<()> {
    if agent_exists(tx, id)? {
        Ok(())
    } else {
        Err(StoreError::NotFound { id: id.to_owned() }.into())
    }
}

/// `text` with LIKE's wildcards (`%`, `_`, `\`) escaped, for `ESCAPE '\'`.
fn like_escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

fn like_prefix(prefix: &str) -> String {
    like_escape(prefix) + "%"
}

/// What names the most recently created agent wherever an id is taken.
pub const LAST: &str = "@last";

fn resolve_id(tx: &Connection, prefix: &str) -> R<String> {
    if prefix.is_empty() {
        return Err(StoreError::NotFound { id: String::new() }.into());
    }
    if agent_exists(tx, prefix)? {
        return Ok(prefix.to_owned());
    }
    if prefix == LAST {
        let mut stmt =
            tx.prepare_cached("SELECT id FROM agents ORDER BY created_at DESC, id DESC LIMIT 1")?;
        return stmt
            .query_row([], |r| r.get::<_, String>(0))
            .optional()?
            .ok_or_else(|| {
                StoreError::NotFound {
                    id: LAST.to_owned(),
                }
                .into()
            });
    }
    let like = |pattern: String| -> R<Vec<String>> {
        let mut stmt = tx.prepare_cached(
            "SELECT id FROM agents WHERE id LIKE ?1 ESCAPE '\\' ORDER BY id LIMIT ?2",
        )?;
        Ok(stmt
            .query_map(
                rusqlite::params![pattern, (MAX_AMBIGUOUS + 1) as i64],
                |r| r.get::<_, String>(0),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    };
    // A unique prefix; else a unique suffix (the short id the live view shows is the last six
    // characters: ids begin with their time, so every recent id shares its first ones).
    let mut matches = like(like_prefix(prefix))?;
    if matches.is_empty() {
        matches = like(format!("%{}", like_escape(prefix)))?;
    }
    match matches.len() {
        0 => Err(StoreError::NotFound {
            id: prefix.to_owned(),
        }
        .into()),
        1 => Ok(matches.into_iter().next().unwrap_or_default()),
        _ => {
            let mut matches = matches;
            if matches.len() > MAX_AMBIGUOUS {
                matches.truncate(MAX_AMBIGUOUS);
                matches.push("...".to_owned());
            }
            Err(StoreError::Ambiguous {
                prefix: prefix.to_owned(),
                matches,
            }
            .into())
        }
    }
}

/// Load, modify, stamp and write back an agent. The closure cannot change
/// `id` or `created_at`.
/// [`Store::transition`] in the transaction `tx`: the record as moved, `None` if it was not
/// in `from`.
fn transition_in(
    tx: &Connection,
    id: &str,
    from: &[AgentStatus],
    to: AgentStatus,
    patch: &AgentPatch,
) -> R<Option<AgentRecord>> {
    let status: Option<String> = tx
        .prepare_cached("SELECT status FROM agents WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let Some(status) = status else {
        return Err(StoreError::NotFound { id: id.to_owned() }.into());
    };
    let current: AgentStatus = status.parse()?;
    if !from.contains(&current) {
        return Ok(None);
    }
    let now = Timestamp::now();
    let moved = rmw(tx, id, |a| {
        patch.apply(a);
        a.status = to;
        if to == AgentStatus::Running && patch.started_at.is_none() && a.started_at.is_none() {
            a.started_at = Some(now);
        }
        if patch.ended_at.is_none() {
            if to.is_terminal() {
                if a.ended_at.is_none() {
                    a.ended_at = Some(now);
                }
            } else if current.is_terminal() {
                // Resumed: the previous end no longer applies.
                a.ended_at = None;
            }
        }
    })?;
    Ok(Some(moved))
}

/// [`Store::append_events`] in the transaction `tx`.
fn append_in(tx: &Connection, agent_id: &str, events: &[NewEvent]) -> R<Vec<u64>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    require_agent(tx, agent_id)?;
    let last: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events WHERE agent_id = ?1")?
        .query_row([agent_id], |r| r.get(0))?;
    let mut seq = u64::try_from(last).unwrap_or(0);
    let now = Timestamp::now();
    let mut stmt = tx.prepare_cached(
        "INSERT INTO events (agent_id, seq, at, kind, payload, raw, parsed) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut seqs = Vec::with_capacity(events.len());
    for ev in events {
        seq += 1;
        stmt.execute(rusqlite::params![
            agent_id,
            i(seq),
            ts(&ev.at.unwrap_or(now)),
            ev.kind,
            json(&ev.payload)?,
            ev.raw,
            ev.parsed,
        ])?;
        seqs.push(seq);
    }
    Ok(seqs)
}

/// [`Store::record_usage`] in the transaction `tx`.
fn usage_in(tx: &Connection, usage: &UsageRecord) -> R<()> {
    require_agent(tx, &usage.agent_id)?;
    tx.prepare_cached(
        "INSERT INTO usage (agent_id, turn, model, input_tokens, output_tokens, \
         cached_tokens, cost_usd, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(rusqlite::params![
        usage.agent_id,
        i64::from(usage.turn),
        usage.model,
        i(usage.input_tokens),
        i(usage.output_tokens),
        i(usage.cached_tokens),
        usage.cost_usd,
        ts(&usage.at),
    ])?;
    rmw(tx, &usage.agent_id, |a| {
        a.usage = a.usage.saturating_add(Usage {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_tokens: usage.cached_tokens,
        });
        if let Some(c) = usage.cost_usd {
            a.cost_usd = Some(a.cost_usd.unwrap_or(0.0) + c);
        }
    })?;
    Ok(())
}

fn rmw(tx: &Connection, id: &str, f: impl FnOnce(&mut AgentRecord)) -> R<AgentRecord> {
    let mut a = load_agent(tx, id)?;
    // What an agent is given once: `write_agent` does not overwrite it.
    let (orig_id, parent, root, created_at) = (
        a.id.clone(),
        a.parent_id.clone(),
        a.root_id.clone(),
        a.created_at,
    );
    f(&mut a);
    a.id = orig_id;
    a.parent_id = parent;
    a.root_id = root;
    a.created_at = created_at;
    a.updated_at = Timestamp::now();
    write_agent(tx, &a, false)?;
    Ok(a)
}

// ---------------------------------------------------------------------------
// tasks, events, usage rows

fn task_from_row(row: &Row<'_>) -> rusqlite::Result<TaskRecord> {
    Ok(TaskRecord {
        name: row.get(0)?,
        description: row.get(1)?,
        source: row.get(2)?,
        defaults: get_json(row, 3)?,
        instructions: row.get(4)?,
        updated_at: get_ts(row, 5)?,
    })
}

const TASK_COLS: &str = "name, description, source, defaults, instructions, updated_at";

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<EventRecord> {
    Ok(EventRecord {
        agent_id: row.get(0)?,
        seq: get_u64(row, 1)?,
        at: get_ts(row, 2)?,
        kind: row.get(3)?,
        payload: get_json(row, 4)?,
        raw: row.get(5)?,
        parsed: row.get(6)?,
    })
}

fn usage_from_row(row: &Row<'_>) -> rusqlite::Result<UsageRecord> {
    Ok(UsageRecord {
        agent_id: row.get(0)?,
        turn: get_u32(row, 1)?,
        model: row.get(2)?,
        input_tokens: get_u64(row, 3)?,
        output_tokens: get_u64(row, 4)?,
        cached_tokens: get_u64(row, 5)?,
        cost_usd: row.get(6)?,
        at: get_ts(row, 7)?,
    })
}

// ---------------------------------------------------------------------------

/// Insert or replace a task by name.
fn write_task(tx: &Connection, task: &TaskRecord) -> R<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO tasks ({TASK_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (name) DO UPDATE SET description = excluded.description, \
                     source = excluded.source, defaults = excluded.defaults, \
                     instructions = excluded.instructions, updated_at = excluded.updated_at"
    ))?
    .execute(rusqlite::params![
        task.name,
        task.description,
        task.source,
        json(&task.defaults)?,
        task.instructions,
        ts(&task.updated_at),
    ])?;
    Ok(())
}

/// `agent` with its ids filled in: a fresh ULID for an empty `id`, the id for an empty
/// `root_id`.
fn with_ids(agent: &AgentRecord) -> AgentRecord {
    let mut a = agent.clone();
    if a.id.is_empty() {
        a.id = new_id();
    }
    if a.root_id.is_empty() {
        a.root_id = a.id.clone();
    }
    a
}

/// Insert a new agent (an id taken, or an unknown parent, is an error).
fn insert_new_agent(tx: &Connection, a: &AgentRecord) -> R<()> {
    if agent_exists(tx, &a.id)? {
        return Err(StoreError::AlreadyExists { id: a.id.clone() }.into());
    }
    if let Some(parent) = &a.parent_id {
        require_agent(tx, parent)?;
    }
    write_agent(tx, a, true)
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.path.clone()
    }

    fn upsert_task(&self, task: &TaskRecord) -> Result<()> {
        self.write(|tx| write_task(tx, task))
    }

    fn insert_agent_of_task(&self, task: &TaskRecord, agent: &AgentRecord) -> Result<AgentRecord> {
        let a = with_ids(agent);
        self.write(|tx| {
            write_task(tx, task)?;
            insert_new_agent(tx, &a)
        })?;
        Ok(a)
    }

    fn insert_agent_of_task_with_next_write(
        &self,
        task: &TaskRecord,
        agent: &AgentRecord,
    ) -> Result<AgentRecord> {
        let a = with_ids(agent);
        loop {
            let mut slot = self.pending_slot();
            if slot.is_none() {
                *slot = Some((task.clone(), a.clone()));
                return Ok(a);
            }
            // One held back at a time: the earlier one is written first.
            drop(slot);
            self.write_pending()?;
        }
    }

    fn get_task(&self, name: &str) -> Result<Option<TaskRecord>> {
        self.read(|tx| {
            Ok(tx
                .prepare_cached(&format!("SELECT {TASK_COLS} FROM tasks WHERE name = ?1"))?
                .query_row([name], task_from_row)
                .optional()?)
        })
    }

    fn list_tasks(&self) -> Result<Vec<TaskRecord>> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare_cached(&format!("SELECT {TASK_COLS} FROM tasks ORDER BY name"))?;
            let rows = stmt
                .query_map([], task_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn insert_agent(&self, agent: &AgentRecord) -> Result<AgentRecord> {
        let a = with_ids(agent);
        self.write(|tx| insert_new_agent(tx, &a))?;
        Ok(a)
    }

    fn get_agent(&self, id_or_prefix: &str) -> Result<AgentRecord> {
        // A record held back for the next write, asked for by its id, is as it will be written.
        if let Some((_, a)) = self
            .pending_slot()
            .as_ref()
            .filter(|(_, a)| a.id == id_or_prefix)
        {
            return Ok(a.clone());
        }
        self.read(|tx| {
            let id = resolve_id(tx, id_or_prefix)?;
            load_agent(tx, &id)
        })
    }

    fn list_agents(&self, filter: &AgentFilter) -> Result<Vec<AgentRecord>> {
        let mut conds: Vec<String> = Vec::new();
        let mut args: Vec<String> = Vec::new();
        if !filter.statuses.is_empty() {
            let marks = filter
                .statuses
                .iter()
                .map(|s| {
                    args.push(s.as_str().to_owned());
                    format!("?{}", args.len())
                })
                .collect::<Vec<_>>()
                .join(", ");
            conds.push(format!("status IN ({marks})"));
        }
        if let Some(p) = &filter.parent_id {
            args.push(p.clone());
            conds.push(format!("parent_id = ?{}", args.len()));
        }
        if let Some(r) = &filter.root_id {
            args.push(r.clone());
            conds.push(format!("root_id = ?{}", args.len()));
        }
        if let Some(t) = &filter.task {
            args.push(t.clone());
            conds.push(format!("task = ?{}", args.len()));
        }
        if filter.roots_only {
            conds.push("parent_id IS NULL".to_owned());
        }
        let where_ = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        // No `LIMIT` without a limit: with one (even `LIMIT -1`) SQLite keeps the rows in a
        // temporary b-tree, not its sorter, and a list of 1,300 agents took twice as long.
        let limit = filter
            .limit
            .map(|l| format!(" LIMIT {}", i64::try_from(l).unwrap_or(i64::MAX)))
            .unwrap_or_default();
        let sql = format!(
            "SELECT {AGENT_COLS} FROM agents{where_} ORDER BY \
             CASE status WHEN 'running' THEN 0 WHEN 'starting' THEN 1 WHEN 'queued' THEN 2 \
             ELSE 3 END, created_at DESC, id DESC{limit}"
        );
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args.iter()), agent_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn has_children(&self, id: &str) -> Result<bool> {
        self.read(|tx| {
            tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM agents WHERE parent_id = ?1)")?
                .query_row([id], |r| r.get(0))
                .map_err(E::from)
        })
    }

    fn children(&self, id: &str) -> Result<Vec<AgentRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {AGENT_COLS} FROM agents WHERE parent_id = ?1 ORDER BY created_at, id"
            ))?;
            let rows = stmt
                .query_map([id], agent_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn update_agent(&self, id: &str, patch: &AgentPatch) -> Result<AgentRecord> {
        self.write(|tx| rmw(tx, id, |a| patch.apply(a)))
    }

    fn modify_agent(&self, id: &str, f: &mut dyn FnMut(&mut AgentRecord)) -> Result<AgentRecord> {
        self.write(|tx| rmw(tx, id, f))
    }

    fn transition(
        &self,
        id: &str,
        from: &[AgentStatus],
        to: AgentStatus,
        patch: &AgentPatch,
    ) -> Result<bool> {
        self.write(|tx| Ok(transition_in(tx, id, from, to, patch)?.is_some()))
    }

    fn transition_with_events(
        &self,
        id: &str,
        write: &TransitionWrite<'_>,
        events: &mut dyn FnMut(bool, &AgentRecord) -> Vec<NewEvent>,
    ) -> Result<(AgentRecord, Vec<u64>)> {
        self.write(|tx| {
            if let Some(u) = write.usage {
                usage_in(tx, u)?;
            }
            let (moved, rec) = match transition_in(tx, id, write.from, write.to, write.patch)? {
                Some(rec) => (true, rec),
                None => match write.otherwise {
                    Some(patch) => (false, rmw(tx, id, |a| patch.apply(a))?),
                    None => (false, load_agent(tx, id)?),
                },
            };
            let seqs = append_in(tx, id, &events(moved, &rec))?;
            Ok((rec, seqs))
        })
    }

    fn delete_agent(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            let n = tx
                .prepare_cached("DELETE FROM agents WHERE id = ?1")?
                .execute([id])?;
            if n == 0 {
                return Err(StoreError::NotFound { id: id.to_owned() }.into());
            }
            Ok(())
        })
    }

    fn append_events(&self, agent_id: &str, events: &[NewEvent]) -> Result<Vec<u64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|tx| append_in(tx, agent_id, events))
    }

    fn events(
        &self,
        agent_id: &str,
        after_seq: u64,
        limit: Option<usize>,
    ) -> Result<Vec<EventRecord>> {
        let limit = limit
            .map(|l| i64::try_from(l).unwrap_or(i64::MAX))
            .unwrap_or(-1);
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT agent_id, seq, at, kind, payload, raw, parsed FROM events \
                 WHERE agent_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt
                .query_map(
                    rusqlite::params![agent_id, i(after_seq), limit],
                    event_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn event_count(&self, agent_id: &str) -> Result<u64> {
        self.read(|tx| {
            let n: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM events WHERE agent_id = ?1")?
                .query_row([agent_id], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn record_usage(&self, usage: &UsageRecord) -> Result<()> {
        self.write(|tx| usage_in(tx, usage))
    }

    fn usage(&self, agent_id: &str) -> Result<Vec<UsageRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT agent_id, turn, model, input_tokens, output_tokens, cached_tokens, \
                 cost_usd, at FROM usage WHERE agent_id = ?1 ORDER BY id",
            )?;
            let rows = stmt
                .query_map([agent_id], usage_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_and_sortable() {
        let a = Timestamp::new(1_700_000_000, 0).unwrap();
        let b = Timestamp::new(1_700_000_000, 500_000_000).unwrap();
        let c = Timestamp::new(1_700_000_001, 1).unwrap();
        let (sa, sb, sc) = (ts(&a), ts(&b), ts(&c));
        assert_eq!(sa, "2023-11-14T22:13:20.000000000Z");
        assert_eq!(sa.len(), sb.len());
        assert!(sa < sb && sb < sc);
        assert_eq!(sb.parse::<Timestamp>().unwrap(), b);
    }

    #[test]
    fn like_prefix_escapes_wildcards() {
        assert_eq!(like_prefix("a%b_c\\"), "a\\%b\\_c\\\\%");
    }

    fn agent() -> AgentRecord {
        AgentRecord::new("t", "rt", "claude", Mode::Batch, "p")
    }

    /// While a write of ours waits for a lock another connection holds (holding our write
    /// connection), reads still answer, from a read connection. Were they queued behind the
    /// write, this would deadlock until the busy timeout and the write would fail.
    #[test]
    fn reads_do_not_wait_for_a_write_waiting_for_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let store = std::sync::Arc::new(
            SqliteStore::open_with_timeout(&db, Duration::from_secs(60)).unwrap(),
        );
        let a = store.insert_agent(&agent()).unwrap();
        store
            .append_events(&a.id, &[NewEvent::new("message", serde_json::json!({}))])
            .unwrap();

        let other = Connection::open(&db).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let writer = {
            let store = std::sync::Arc::clone(&store);
            let id = a.id.clone();
            std::thread::spawn(move || {
                store.update_agent(
                    &id,
                    &AgentPatch {
                        status: Some(AgentStatus::Running),
                        ..AgentPatch::default()
                    },
                )
            })
        };
        // Until the write holds the write connection (it is then waiting for the lock).
        while store.conn.try_lock().is_ok() {
            std::thread::yield_now();
        }
        assert_eq!(store.get_agent(&a.id).unwrap().status, AgentStatus::Queued);
        assert_eq!(store.events(&a.id, 0, None).unwrap().len(), 1);
        assert_eq!(store.event_count(&a.id).unwrap(), 1);
        assert_eq!(store.list_agents(&AgentFilter::default()).unwrap().len(), 1);
        other.execute_batch("COMMIT").unwrap();
        let updated = writer.join().unwrap().unwrap();
        assert_eq!(updated.status, AgentStatus::Running);
        assert_eq!(store.get_agent(&a.id).unwrap().status, AgentStatus::Running);
    }

    /// SQLite's process-wide memory settings are made before the first connection: a
    /// connection has no lookaside memory (each one's 48 KiB, threaded through at open, was
    /// a dozen page faults of a one-shot command).
    #[test]
    fn connections_set_no_memory_aside_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("state.db")).unwrap();
        let conn = store.lock();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert!(n > 0);
        let (mut cur, mut hits) = (0, 0);
        // SAFETY: the live handle of `conn`, two out-ints alive for the call.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_db_status(
                conn.handle(),
                rusqlite::ffi::SQLITE_DBSTATUS_LOOKASIDE_HIT,
                &mut cur,
                &mut hits,
                0,
            )
        };
        assert_eq!(rc, rusqlite::ffi::SQLITE_OK);
        assert_eq!(hits, 0, "lookaside served {hits} allocations");
    }

    /// An update of an agent writes its row's page and the status index's, not the indexes
    /// of what an agent is given once (parent, root, creation time): each WAL frame is written
    /// now and read again by the next process's open. And those stay as they were inserted.
    #[test]
    fn an_update_leaves_the_parent_root_and_created_indexes_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let store = SqliteStore::open(&db).unwrap();
        let a = store.insert_agent(&agent()).unwrap();
        let wal = db.with_extension("db-wal");
        let frames = || (std::fs::metadata(&wal).unwrap().len().saturating_sub(32)) / (24 + 4096);
        let before = frames();
        let b = store
            .update_agent(
                &a.id,
                &AgentPatch {
                    result: Some(Some("done".into())),
                    ..AgentPatch::default()
                },
            )
            .unwrap();
        // The table's page and the status index's (its column is set by every write).
        assert_eq!(frames() - before, 2);
        assert_eq!(
            (b.parent_id, b.root_id, b.created_at),
            (a.parent_id, a.root_id, a.created_at)
        );
        assert_eq!(
            store.get_agent(&a.id).unwrap().result.as_deref(),
            Some("done")
        );
    }

    /// A record held back for the next write (`fracta spawn`'s, until its launch writes
    /// `running`): read back by its id as it will be written, seen by no other connection
    /// until then, written in that write's transaction (a failed one takes it back out, and
    /// the write after takes it), and written by a read of anything else or by the store's
    /// drop.
    #[test]
    fn a_record_held_back_goes_in_with_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let s = SqliteStore::open(&db).unwrap();
        let other = Connection::open(&db).unwrap();
        let stored = |table: &str| {
            other
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap()
        };
        let task = TaskRecord {
            name: "t".into(),
            description: None,
            source: "inline".into(),
            defaults: serde_json::json!({}),
            instructions: "do it".into(),
            updated_at: Timestamp::now(),
        };
        let a = s
            .insert_agent_of_task_with_next_write(&task, &agent())
            .unwrap();
        assert!(!a.id.is_empty());
        assert_eq!(a.root_id, a.id);
        assert_eq!(s.get_agent(&a.id).unwrap(), a);
        assert_eq!((stored("agents"), stored("tasks")), (0, 0));

        let failed: Result<()> =
            s.write(|_| Err(StoreError::AlreadyExists { id: "x".into() }.into()));
        assert!(failed.is_err());
        assert_eq!((stored("agents"), stored("tasks")), (0, 0));

        let running = s
            .update_agent(
                &a.id,
                &AgentPatch {
                    status: Some(AgentStatus::Running),
                    ..AgentPatch::default()
                },
            )
            .unwrap();
        assert_eq!(running.status, AgentStatus::Running);
        assert_eq!((stored("agents"), stored("tasks")), (1, 1));
        assert_eq!(s.get_task("t").unwrap().unwrap().instructions, "do it");

        let b = s
            .insert_agent_of_task_with_next_write(&task, &agent())
            .unwrap();
        assert_eq!(stored("agents"), 1);
        let listed = s.list_agents(&AgentFilter::default()).unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().any(|x| x.id == b.id));
        // One held back while another is: the first is written then.
        let c = s
            .insert_agent_of_task_with_next_write(&task, &agent())
            .unwrap();
        let d = s
            .insert_agent_of_task_with_next_write(&task, &agent())
            .unwrap();
        assert_eq!(stored("agents"), 3);
        drop(s);
        assert_eq!(stored("agents"), 4);
        let s = SqliteStore::open(&db).unwrap();
        assert_eq!(s.get_agent(&c.id).unwrap().id, c.id);
        assert_eq!(s.get_agent(&d.id).unwrap().id, d.id);
    }

    /// Read connections cannot write, and go back to the pool.
    #[test]
    fn read_connections_are_read_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("state.db")).unwrap();
        let readers = store.readers.as_ref().unwrap();
        let conn = readers.take().unwrap();
        assert!(conn.execute_batch("CREATE TABLE x (y)").is_err());
        readers.put(conn);
        assert_eq!(readers.idle_list().len(), 1);
        let a = store.insert_agent(&agent()).unwrap();
        // The write connection busy: the read runs on the pooled connection, and returns it.
        let held = store.lock();
        assert_eq!(store.get_agent(&a.id).unwrap().id, a.id);
        assert_eq!(readers.idle_list().len(), 1);
        drop(held);
    }

    /// A write that fails, or panics, half-way leaves nothing of itself and no transaction
    /// open: the next write and read go through.
    #[test]
    fn a_failed_or_panicking_write_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path().join("state.db")).unwrap();
        let a = agent();
        let failed: Result<()> = s.write(|tx| {
            insert_new_agent(tx, &a)?;
            Err(StoreError::AlreadyExists { id: "x".into() }.into())
        });
        assert!(failed.is_err());
        assert!(matches!(
            s.get_agent(&a.id),
            Err(StoreError::NotFound { .. })
        ));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _: Result<()> = s.write(|tx| {
                insert_new_agent(tx, &a)?;
                panic!("half-way");
            });
        }));
        assert!(panicked.is_err());
        assert!(matches!(
            s.get_agent(&a.id),
            Err(StoreError::NotFound { .. })
        ));
        s.insert_agent(&a).unwrap();
        assert_eq!(s.get_agent(&a.id).unwrap().id, a.id);
    }

    /// The store's cached statements are compiled once per connection, however many
    /// different values are bound to them (SQLite had recompiled the events' `MAX(seq)` query
    /// at each append: its plan had looked at the bound agent id).
    #[test]
    fn cached_statements_are_not_compiled_again_for_new_values() {
        use rusqlite::StatementStatus::RePrepare;
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path().join("state.db")).unwrap();
        let (a, b) = (agent(), agent());
        s.insert_agent(&a).unwrap();
        s.insert_agent(&b).unwrap();
        for id in [&a.id, &b.id, &a.id, &b.id] {
            s.append_events(id, &[NewEvent::new("status", serde_json::json!({}))])
                .unwrap();
        }
        let conn = s.lock();
        let max = conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events WHERE agent_id = ?1")
            .unwrap();
        assert_eq!(max.get_status(RePrepare), 0);
    }

    /// An in-memory store has no read connections; its reads use the one connection.
    #[test]
    fn in_memory_reads_use_the_one_connection() {
        let store = SqliteStore::open_in_memory().unwrap();
        assert!(store.readers.is_none());
        let a = store.insert_agent(&agent()).unwrap();
        assert_eq!(store.get_agent(&a.id).unwrap().id, a.id);
    }

    /// Store calls are safe from async code on either runtime flavor.
    #[test]
    fn calls_from_either_runtime_flavor() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SqliteStore::open(dir.path().join("state.db")).unwrap());
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for rt in [multi, current] {
            let store = std::sync::Arc::clone(&store);
            let a = rt.block_on(async move {
                let s = std::sync::Arc::clone(&store);
                let a = tokio::spawn(async move { s.insert_agent(&agent()) })
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(store.get_agent(&a.id).unwrap().id, a.id);
                a
            });
            assert!(!a.id.is_empty());
        }
    }
}
