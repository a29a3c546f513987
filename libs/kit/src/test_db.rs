//! Fresh, empty databases for tests: one per test, so tests never see each other's rows, dropped when the test
//! ends (also when it panics), so no test database is left behind.
//!
//! PostgreSQL is, in this order: the server of `RAPPORT_TEST_POSTGRES_URL` when it is set; the one on
//! 127.0.0.1:5432 when it answers; otherwise a throwaway server started from `initdb` and `pg_ctl` (on `PATH`, or
//! Debian's `/usr/lib/postgresql/*/bin`) in the temp folder on port 54329. Test processes share that server (a
//! file lock lets one of them start it), and it keeps running for the next run (`pg_ctl -D <tmp>/rapport-test-pg/data
//! stop` stops it). Without the binaries the first PostgreSQL test fails at once, saying what to install.
use std::{
    fs,
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbErr};

/// Port of the throwaway server.
pub const THROWAWAY_PORT: u16 = 54329;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A new SQLite file in the temp folder.
    Sqlite,
    /// A new database on the test PostgreSQL server (see the module's documentation).
    Postgres,
}

/// Both backends, for tests that run on each.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// A database created for one test; dropping it drops the database (PostgreSQL, `WITH (FORCE)`, closing the
/// connections still open) or deletes the file (SQLite). Keep it alive for as long as the test uses the URL: bind
/// it to a variable, never pass `fresh_database(..).await?.url()` straight on.
#[must_use = "the database is dropped with this value"]
#[derive(Debug)]
pub struct TestDb {
    url: String,
    name: String,
    place: Place,
}

#[derive(Debug)]
enum Place {
    File(PathBuf),
    Postgres { admin: String, name: String },
}

impl TestDb {
    /// The database's URL, for `DATABASE_URL` or `Config::local`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name (`rapport_t_…`; on PostgreSQL what workers' spans carry as `db.namespace`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.place {
            Place::File(path) => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = fs::remove_file(p);
                }
            }
            Place::Postgres { admin, name } => {
                // Drop runs inside the test's runtime, which cannot be blocked on: a thread with its own runtime.
                let (admin, sql) = (admin.clone(), format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                let dropped = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                    rt.block_on(async {
                        let admin = admin_connection(&admin).await.ok()?;
                        let done = admin.execute_unprepared(&sql).await.ok();
                        let _ = admin.close().await;
                        done
                    })
                })
                .join();
                if !matches!(dropped, Ok(Some(_))) {
                    eprintln!("test database {name} could not be dropped");
                }
            }
        }
    }
}

/// Creates a fresh database.
pub async fn fresh_database(backend: Backend) -> Result<TestDb, DbErr> {
    let name = format!("rapport_t_{}", uuid::Uuid::new_v4().simple());
    match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            Ok(TestDb { url: format!("sqlite://{}?mode=rwc", path.display()), place: Place::File(path), name })
        }
        Backend::Postgres => {
            let base = postgres_server().map_err(DbErr::Custom)?;
            let admin_url = format!("{base}/postgres");
            let admin = admin_connection(&admin_url).await.map_err(|e| {
                DbErr::Custom(format!(
                    "no PostgreSQL answers at {base} ({e}): start one, or unset RAPPORT_TEST_POSTGRES_URL to let \
                     the tests start a throwaway server"
                ))
            })?;
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
            admin.close().await?;
            Ok(TestDb {
                url: format!("{base}/{name}"),
                place: Place::Postgres { admin: admin_url, name: name.clone() },
                name,
            })
        }
    }
}

async fn admin_connection(url: &str) -> Result<sea_orm::DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false).max_connections(1).connect_timeout(Duration::from_secs(10));
    Database::connect(opts).await
}

/// The base URL (no database) of the test PostgreSQL server, started when needed; once per process.
fn postgres_server() -> Result<String, String> {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            if let Ok(url) = std::env::var("RAPPORT_TEST_POSTGRES_URL") {
                return Ok(url.trim_end_matches('/').to_string());
            }
            if answers(5432) {
                return Ok("postgres://postgres@127.0.0.1:5432".into());
            }
            start_throwaway(&std::env::temp_dir().join("rapport-test-pg"), THROWAWAY_PORT)
        })
        .clone()
}

/// The URL of the test NATS server (JetStream enabled): `RAPPORT_TEST_NATS_URL`, else the server on
/// 127.0.0.1:4222 when one answers, else a throwaway `nats-server -js` (on `PATH` or Debian's `/usr/sbin`) on port
/// 42229 with its store in the temp folder, left running for the next test process; once per process.
pub fn nats_server() -> Result<String, String> {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            if let Ok(url) = std::env::var("RAPPORT_TEST_NATS_URL") {
                return Ok(url);
            }
            if answers(4222) {
                return Ok("nats://127.0.0.1:4222".into());
            }
            const PORT: u16 = 42229;
            let dir = std::env::temp_dir().join("rapport-test-nats");
            let io = |what: &str, e: std::io::Error| format!("{what} {}: {e}", dir.display());
            fs::create_dir_all(&dir).map_err(|e| io("creating", e))?;
            let lock = fs::File::create(dir.join("lock")).map_err(|e| io("locking", e))?;
            lock.lock().map_err(|e| io("locking", e))?;
            let url = format!("nats://127.0.0.1:{PORT}");
            if answers(PORT) {
                return Ok(url);
            }
            let bin = std::env::var_os("PATH")
                .into_iter()
                .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .chain([PathBuf::from("/usr/sbin")])
                .map(|d| d.join("nats-server"))
                .find(|p| p.is_file())
                .ok_or(
                    "no NATS answers on 127.0.0.1:4222 and `nats-server` is not installed to start a throwaway one: \
                        install it (Debian: apt install nats-server), start one with -js, or set RAPPORT_TEST_NATS_URL",
                )?;
            let log = fs::File::create(dir.join("log")).map_err(|e| io("creating the log in", e))?;
            Command::new(bin)
                .args(["-js", "-a", "127.0.0.1", "-p", &PORT.to_string(), "-sd"])
                .arg(dir.join("store"))
                .stdout(log.try_clone().map_err(|e| io("logging in", e))?)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("starting nats-server: {e}"))?;
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !answers(PORT) {
                if std::time::Instant::now() > deadline {
                    return Err(format!(
                        "nats-server did not answer on port {PORT}; see {}",
                        dir.join("log").display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(url)
        })
        .clone()
}

fn answers(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(1)).is_ok()
}

/// Starts (or finds running) a PostgreSQL server with its data under `dir`, listening on 127.0.0.1:`port` with
/// trust authentication for user `postgres`, and returns its base URL. Several processes may call this at once:
/// one starts the server, the others wait on a file lock and find it running.
pub fn start_throwaway(dir: &Path, port: u16) -> Result<String, String> {
    let url = format!("postgres://postgres@127.0.0.1:{port}");
    let io = |what: &str, e: std::io::Error| format!("{what} {}: {e}", dir.display());
    fs::create_dir_all(dir).map_err(|e| io("creating", e))?;
    let lock = fs::File::create(dir.join("lock")).map_err(|e| io("locking", e))?;
    lock.lock().map_err(|e| io("locking", e))?;
    if answers(port) {
        return Ok(url);
    }
    let data = dir.join("data");
    let root = running_as_root();
    if root {
        // PostgreSQL refuses to run as root: its files belong to the `postgres` user, which runs it.
        run(Command::new("chown").arg("postgres").arg(dir))?;
    }
    if !data.join("PG_VERSION").exists() {
        let _ = fs::remove_dir_all(&data);
        let mut initdb = pg_command("initdb", root)?;
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
        run(&mut initdb)?;
    }
    let mut start = pg_command("pg_ctl", root)?;
    start.arg("-D").arg(&data).arg("-l").arg(dir.join("log")).args(["-w", "-t", "60", "-o"]).arg(format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400",
        data.display()
    ));
    run(start.arg("start"))?;
    Ok(url)
}

/// Stops the throwaway server under `dir` (fast shutdown).
pub fn stop_throwaway(dir: &Path) -> Result<(), String> {
    let mut stop = pg_command("pg_ctl", running_as_root())?;
    run(stop.arg("-D").arg(dir.join("data")).args(["-m", "fast", "-w", "stop"]))
}

fn pg_command(tool: &str, as_postgres: bool) -> Result<Command, String> {
    let path = find_tool(tool).ok_or_else(|| {
        format!(
            "no PostgreSQL answers on 127.0.0.1:5432 and `{tool}` is not on PATH to start a throwaway one: install \
             PostgreSQL (Debian: apt install postgresql), start a server, or set RAPPORT_TEST_POSTGRES_URL"
        )
    })?;
    Ok(if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    })
}

fn find_tool(tool: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let mut debian: Vec<PathBuf> =
        fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten().map(|e| e.path().join("bin")).collect();
    debian.sort();
    on_path.chain(debian.into_iter().rev()).map(|d| d.join(tool)).find(|p| p.is_file())
}

fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}
