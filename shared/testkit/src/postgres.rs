//! A PostgreSQL cluster of one test, which the test may stop, start and
//! restart (a database outage, a restart for maintenance): `initdb` in a
//! folder of its own, a free port on loopback, trust authentication, fsync
//! off (test data only), as `scripts/with-postgres.sh` makes the shared one.
//! Stopped and removed when dropped.
//!
//! The binaries are those of the newest `/usr/lib/postgresql/*/bin`, which
//! the PostgreSQL pass installs. PostgreSQL refuses to run as root: as root,
//! they run as the `postgres` account.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::nats::free_port;

/// A throwaway PostgreSQL server.
pub struct PostgresCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

/// The newest installed PostgreSQL's `bin` folder.
fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (/usr/lib/postgresql)")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    // Major versions are whole numbers: compare them as such.
    dirs.sort_by_key(|bin| {
        bin.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str()?.parse::<u32>().ok())
    });
    dirs.pop().expect("a PostgreSQL bin folder")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

impl PostgresCluster {
    /// Creates and starts a cluster; returns once it accepts connections.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("pg-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cluster folder");
        let cluster = Self {
            bin: bin_dir(),
            dir,
            port: free_port(),
        };
        if is_root() {
            run(Command::new("chown").arg("postgres").arg(&cluster.dir));
        }
        let data = cluster.data();
        cluster
            .pg(
                "initdb",
                &["-A", "trust", "-U", "postgres", "--no-sync", "-D", &data],
            )
            .await;
        cluster.resume().await;
        cluster
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of database `name` on this server.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` (letters, digits, `_`) and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut admin = sqlx::AnyConnection::connect(&self.url())
            .await
            .expect("the test cluster is reachable");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("database created");
        let _ = admin.close().await;
        self.url_of(name)
    }

    /// Stops the server (`-m fast`: sessions are ended, as in a restart for
    /// maintenance); returns once it is down.
    pub async fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "stop"]).await;
    }

    /// Starts the stopped server again, on the same port and data.
    pub async fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.pg_ctl(&["-w", "-l", &log, "-o", &options, "start"])
            .await;
    }

    /// What `pg_ctl restart -m fast` does: sessions are ended and the server
    /// is back once this returns. (`pg_ctl restart` itself takes no log
    /// file, and a server it starts writes to our pipes, which then never
    /// close.)
    pub async fn restart(&self) {
        self.stop().await;
        self.resume().await;
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    async fn pg_ctl(&self, args: &[&str]) {
        let data = self.data();
        let mut all = vec!["-D", &data];
        all.extend_from_slice(args);
        self.pg("pg_ctl", &all).await;
    }

    /// Runs one of the server's programs, as `postgres` when we are root, on
    /// a blocking thread so that the servers under test go on serving.
    async fn pg(&self, program: &str, args: &[&str]) {
        let mut command = self.command(program);
        command.args(args);
        tokio::task::spawn_blocking(move || run(&mut command))
            .await
            .expect("the command ran");
    }

    /// One of the server's programs, run as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(program));
            c
        } else {
            Command::new(self.bin.join(program))
        }
    }
}

/// Runs `command`, panicking with its output when it fails.
fn run(command: &mut Command) {
    let out = command.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", data.as_str(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
