//! A real Dovecot IMAP server for the test, on free loopback ports, with a
//! test CA: implicit TLS and STARTTLS, one user, Maildir storage in a temp
//! folder. Needs Debian's `dovecot-imapd` (`.ci/run` installs it); without it
//! the test says so and skips, except under CI, where it fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const USER: &str = "bounces@cafe-test.example";
pub const PASSWORD: &str = "s3cret-imap";

pub struct Dovecot {
    dir: TempDir,
    child: Child,
    pub imaps_port: u16,
    pub imap_port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Dovecot {
    pub fn start() -> Option<Dovecot> {
        let binary = ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(binary) = binary else {
            assert!(
                std::env::var_os("CI").is_none(),
                "dovecot is not installed (apt-get install dovecot-imapd); CI must run this test"
            );
            eprintln!("note: dovecot not installed, IMAP part of this test skipped");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=outreach test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "srv.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "srv.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        // Mail is kept as `nobody`; Dovecot refuses root for mail access.
        std::os::unix::fs::chown(d.join("home"), Some(65534), Some(65534)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
        let (imaps_port, imap_port) = (free_port(), free_port());
        let p = d.display();
        std::fs::write(
            d.join("dovecot.conf"),
            format!(
                r#"base_dir = {p}/run
state_dir = {p}/state
log_path = {p}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{p}/cert.pem
ssl_key = <{p}/key.pem
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {p}/passwd
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={p}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
}}
"#
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", imaps_port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", imap_port)).is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "dovecot did not start: {}",
                std::fs::read_to_string(d.join("dovecot.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Dovecot {
            dir,
            child,
            imaps_port,
            imap_port,
        })
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn maildir(&self, folder: &str) -> PathBuf {
        let base = self.dir.path().join("home").join(USER).join("Maildir");
        if folder == "INBOX" {
            base
        } else {
            base.join(format!(".{folder}"))
        }
    }

    /// Puts an email into the user's INBOX, as local delivery would.
    pub fn deliver(&self, raw: &[u8]) {
        let base = self.maildir("INBOX");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(base.join(sub)).unwrap();
        }
        let name = format!("{}.{}.test", std::process::id(), rand::random::<u64>());
        std::fs::write(base.join("new").join(name), raw).unwrap();
        chown_tree(&self.dir.path().join("home"));
    }

    /// Emails in a folder (new and seen).
    pub fn count(&self, folder: &str) -> usize {
        ["new", "cur"]
            .iter()
            .map(|sub| {
                std::fs::read_dir(self.maildir(folder).join(sub))
                    .map(|d| d.count())
                    .unwrap_or(0)
            })
            .sum()
    }
}

fn chown_tree(path: &Path) {
    std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path());
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
