//! The embedded store on a full disk: inventory's SQLite file on a small
//! tmpfs that a filler file fills. Writes answer 503 `database_unavailable`
//! with `Retry-After` (never a 500), nothing is corrupted, and once space is
//! freed the service serves again without a restart. Needs root (to mount
//! the tmpfs): skipped otherwise, except under `CI=true`, where it fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use shared_testkit::eventually;

use crate::helpers::spawn_app_with;

/// A tmpfs of `size` mounted on a fresh folder, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!(
            "full-disk-{}-{}",
            std::process::id(),
            shared_http::timestamp::now_ms()
        ));
        std::fs::create_dir_all(&dir).expect("folder");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .is_ok_and(|out| out.status.success());
        if !mounted {
            let _ = std::fs::remove_dir(&dir);
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: mounting a tmpfs failed (the test runs as root in CI)"
            );
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        Some(Self(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fills the disk `dir` is on with a file of zeros, to its last byte.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    let block = [0_u8; 4096];
    while file.write_all(&block).and_then(|()| file.flush()).is_ok() {}
    // The last partial block, byte by byte.
    while file.write_all(&[0]).and_then(|()| file.flush()).is_ok() {}
    path
}

#[actix_web::test]
async fn a_full_disk_is_a_503_corrupts_nothing_and_the_store_serves_again_once_space_is_freed() {
    let Some(disk) = SmallDisk::mount("4m") else {
        return;
    };
    let file = disk.0.join("inventory.db");
    let app = spawn_app_with(|config| {
        config.database = shared_db::DatabaseConfig::sqlite_file(&file);
    })
    .await;
    let client = &app.server.client;
    let initial = app.stock("C001").await;
    let filler = fill(&disk.0);

    // Restocks write until the disk has no room: each answers 200 or a 503.
    let restock = json!({"delta": 1, "reason": "restock"});
    let mut landed = 0;
    let refused = loop {
        let res = client.post_json("/items/C001/stock", &restock).await;
        assert_ne!(res.status.as_u16(), 500, "{}", res.text);
        if res.status.as_u16() == 503 {
            break res;
        }
        res.assert_status(200);
        landed += 1;
        assert!(landed < 20_000, "the disk never filled");
    };
    refused.assert_problem(503, "database_unavailable");
    assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
    eprintln!("full disk: {landed} restocks landed before the disk was full");

    std::fs::remove_file(filler).expect("space freed");
    eventually(
        "restocks to land again",
        Duration::from_secs(10),
        async || {
            let res = client.post_json("/items/C001/stock", &restock).await;
            assert_ne!(res.status.as_u16(), 500, "{}", res.text);
            let ok = res.status.is_success();
            landed += i64::from(ok);
            ok
        },
    )
    .await;
    assert_eq!(
        app.stock("C001").await,
        initial + landed,
        "every 200 landed, once"
    );
    let check: String = {
        use sqlx::Connection;
        let url = format!("sqlite://{}", file.display());
        let mut conn = sqlx::AnyConnection::connect(&url).await.expect("opens");
        sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .expect("checked")
    };
    assert_eq!(check, "ok");
}
