//! Customer data on disk is the service user's alone, whatever the umask:
//! the data folder 0700, the SQLite database with its WAL and SHM 0600,
//! the outbox folder 0700 and every `.eml` file 0600. And secret files:
//! `check` refuses a key too short to be one and warns about a secret file
//! other users can read.
//!
//! The tests here run under umask 022 (the usual one outside systemd). The
//! mask is process-wide, so from the first of them on the other modules of
//! this test binary run under it too: harmless, as no test depends on a
//! stricter mask (the program sets the modes it needs itself).

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::app::{TestApp, berlin};
use common::{Env, stderr, stdout};

#[allow(unsafe_code)]
fn umask_022() {
    // SAFETY: umask only sets the process's file mode mask.
    unsafe { libc::umask(0o022) };
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn the_data_folder_database_and_mail_files_are_private_under_umask_022() {
    umask_022();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = format!("sqlite://{}/outreach.db", data.display());
    let fragment = format!("[mail]\nfile_dir = \"{}/outbox\"\n", data.display());
    let t = TestApp::with_fragment(
        &url,
        "[limits]\nquiet_hours = \"\"\n\n[[campaign]]\nid = \"news\"\nkind = \"status_update\"\nschedule = \"0 3 1 1 *\"\ntemplate = \"status_update\"\n",
        &fragment,
    )
    .await;
    t.import("email,name,consent\nanna@example.de,Anna,yes\nbob@example.de,Bob,yes\n")
        .await;
    let now = berlin(2026, 11, 23, 10, 0);
    outreach::schedule::start_now(&t.app, "news", now)
        .await
        .unwrap();
    t.tick(now).await;
    assert_eq!(t.deliver_all(now).await, 2);

    assert_eq!(mode(&data), 0o700, "data folder");
    for file in ["outreach.db", "outreach.db-wal", "outreach.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let outbox = data.join("outbox");
    assert_eq!(mode(&outbox), 0o700, "outbox folder");
    let mails: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(mails.len(), 2);
    for mail in mails {
        assert_eq!(mode(&mail), 0o600, "{}", mail.display());
    }
}

#[tokio::test]
async fn a_database_file_left_readable_by_others_is_made_private_on_start() {
    umask_022();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let url = format!("sqlite://{}", db.display());
    outreach::store::Store::connect(&url, 1)
        .await
        .unwrap()
        .close()
        .await;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = outreach::store::Store::connect(&url, 1).await.unwrap();
    assert_eq!(mode(&db), 0o600);
    store.close().await;
}

fn check_with_key(key: &[u8], key_mode: u32) -> (std::process::Output, Env) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token-key");
    std::fs::write(&path, key).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(key_mode)).unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let extra = format!("\n[security]\ntoken_key_file = \"{}\"\n", path.display());
    let env = Env::in_dir(dir, &url, &extra);
    (env.run(&["check"]), env)
}

#[test]
fn check_refuses_a_token_key_under_32_bytes() {
    umask_022();
    let (out, env) = check_with_key(b"k", 0o600);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("security.token_key_file")
            && err.contains("holds 1 bytes; a key needs at least 32")
            && err.contains(&env.config.display().to_string()),
        "{err}"
    );
}

#[test]
fn check_warns_about_a_secret_file_other_users_can_read() {
    umask_022();
    let key = b"nT1b1XnZ8mQm0Jt1p3Q6u9m3cXqkqK7b0k8cQ0W4dYU=";
    let (out, _env) = check_with_key(key, 0o644);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}{}", stdout(&out));
    assert!(
        err.contains("warning:")
            && err.contains("security.token_key_file")
            && err.contains("mode 0644"),
        "{err}"
    );
    let (private, _env) = check_with_key(key, 0o600);
    assert!(
        !stderr(&private).contains("warning:"),
        "{}",
        stderr(&private)
    );
}
