//! The operator's secret key, and the secrets stored under it (TOTP seeds).
//!
//! A TOTP seed in the database is what an attacker with a copy of the database needs to pass the
//! second factor, so it is stored encrypted: XChaCha20-Poly1305 (RustCrypto) with a 256-bit key
//! that lives outside the database, a random 192-bit nonce per value, and the row it belongs to
//! bound in as associated data (a value copied onto another account does not open). Stored form:
//! `enc1:` + Base64(nonce ‖ ciphertext ‖ tag). A value without the prefix is a plaintext seed from
//! before encryption; it keeps working and is encrypted at the next start or use.
//!
//! Where the key comes from (the first that is set), read once at start:
//!
//! 1. `XUEJI_SECRET_KEY`: the key itself, Base64 of 32 bytes (`openssl rand -base64 32`);
//! 2. `XUEJI_SECRET_KEY_FILE`: a file holding that Base64 text;
//! 3. on SQLite only, `<database file>.key` beside the database: created with a new random key
//!    (mode 0600) when absent, which the log says (never the key itself).
//!
//! On PostgreSQL without 1 or 2 there is no key: enrolment is refused with a message naming the
//! setting, and the log warns at start. Several servers over one PostgreSQL must share one key,
//! so none of them invents its own.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// The prefix of an encrypted value (format version 1).
pub const PREFIX: &str = "enc1:";
pub const ENV_KEY: &str = "XUEJI_SECRET_KEY";
pub const ENV_KEY_FILE: &str = "XUEJI_SECRET_KEY_FILE";

/// A 256-bit key. `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

/// Where the key in force came from (for the start-up log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
    /// A new key written to this file just now.
    Generated(PathBuf),
}

impl SecretKey {
    pub fn random() -> Self {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        Self(k)
    }

    /// The key from its Base64 text (32 bytes).
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| "the secret key is not Base64".to_string())?;
        let k: [u8; 32] = bytes.try_into().map_err(|_| {
            "the secret key must be 32 bytes (Base64 of 32 random bytes)".to_string()
        })?;
        Ok(Self(k))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Reads the key file at `path`, or creates it with a new key (mode 0600) when it does not
    /// exist.
    pub fn load_or_create(path: &Path) -> Result<(Self, KeySource), String> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text)
                .map(|k| (k, KeySource::File(path.to_path_buf())))
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::random();
                write_private(path, &format!("{}\n", key.to_base64()))
                    .map_err(|e| format!("cannot create the key file {}: {e}", path.display()))?;
                Ok((key, KeySource::Generated(path.to_path_buf())))
            }
            Err(e) => Err(format!("cannot read the key file {}: {e}", path.display())),
        }
    }

    /// The key by the rules of the module documentation, from these settings (`env_key`,
    /// `env_file`: the two variables' values) and the database URL. `Ok(None)`: no key (a
    /// PostgreSQL database without either setting).
    pub fn resolve(
        env_key: Option<&str>,
        env_file: Option<&str>,
        database_url: &str,
    ) -> Result<Option<(Self, KeySource)>, String> {
        if let Some(k) = env_key.map(str::trim).filter(|k| !k.is_empty()) {
            return Self::from_base64(k)
                .map(|k| Some((k, KeySource::Env)))
                .map_err(|e| format!("{ENV_KEY}: {e}"));
        }
        if let Some(f) = env_file.map(str::trim).filter(|f| !f.is_empty()) {
            let path = PathBuf::from(f);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{ENV_KEY_FILE}: cannot read {}: {e}", path.display()))?;
            return Self::from_base64(&text)
                .map(|k| Some((k, KeySource::File(path.clone()))))
                .map_err(|e| format!("{ENV_KEY_FILE} {}: {e}", path.display()));
        }
        match sqlite_path(database_url) {
            Some(db) => {
                let mut name = db.as_os_str().to_owned();
                name.push(".key");
                Self::load_or_create(Path::new(&name)).map(Some)
            }
            None => Ok(None),
        }
    }

    /// [`SecretKey::resolve`] with the process environment.
    pub fn from_env(database_url: &str) -> Result<Option<(Self, KeySource)>, String> {
        Self::resolve(
            std::env::var(ENV_KEY).ok().as_deref(),
            std::env::var(ENV_KEY_FILE).ok().as_deref(),
            database_url,
        )
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(self.0))
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. the row it is stored in).
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any short message");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{PREFIX}{}", B64.encode(out))
    }

    /// Decrypts a value [`SecretKey::seal`] made with the same key and context; `None` when it
    /// was not (another key, another row, altered bytes).
    pub fn open(&self, stored: &str, context: &str) -> Option<String> {
        let bytes = B64.decode(stored.strip_prefix(PREFIX)?).ok()?;
        if bytes.len() < 24 {
            return None;
        }
        let (nonce, ct) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().ok()?;
        let pt = self
            .cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(pt).ok()
    }
}

/// What `xueji backup` does with the key of the SQLite database at `database_url` when it copies
/// the database to `dest`: a key file beside the database is copied beside the copy (mode 0600),
/// since a copy without its key cannot open its TOTP secrets and every enrolled account would be
/// locked out after a restore. A key from the environment is the operator's to keep; nothing is
/// copied then. Returns what was done, for the operator, in one line (never the key).
pub fn backup_key(
    env_key: Option<&str>,
    env_file: Option<&str>,
    database_url: &str,
    dest: &Path,
) -> Result<String, String> {
    if env_key.is_some_and(|k| !k.trim().is_empty()) {
        return Ok(format!(
            "the secret key comes from {ENV_KEY}: keep it with the backup, the copy needs it"
        ));
    }
    if let Some(f) = env_file.map(str::trim).filter(|f| !f.is_empty()) {
        return Ok(format!(
            "the secret key is the file {f} ({ENV_KEY_FILE}): keep it with the backup, the copy needs it"
        ));
    }
    let Some(db) = sqlite_path(database_url) else {
        return Ok("no secret key to copy".into());
    };
    let (mut from, mut to) = (db.into_os_string(), dest.as_os_str().to_owned());
    from.push(".key");
    to.push(".key");
    let (from, to) = (PathBuf::from(from), PathBuf::from(to));
    match std::fs::read_to_string(&from) {
        Ok(text) => {
            write_private(&to, &text)
                .map_err(|e| format!("cannot write the key file {}: {e}", to.display()))?;
            Ok(format!("secret key copied to {}", to.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok("no secret key file beside the database: nothing to copy".into())
        }
        Err(e) => Err(format!("cannot read the key file {}: {e}", from.display())),
    }
}

/// Whether a stored value is encrypted (else it is a plaintext value from before).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// The database file of an `sqlite://` URL (not `:memory:`).
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let k = SecretKey::random();
        let s = k.seal("JBSWY3DPEHPK3PXP", "totp:7");
        assert!(is_sealed(&s));
        assert!(!s.contains("JBSWY3DPEHPK3PXP"));
        assert_ne!(
            s,
            k.seal("JBSWY3DPEHPK3PXP", "totp:7"),
            "a new nonce each time"
        );
        assert_eq!(k.open(&s, "totp:7").as_deref(), Some("JBSWY3DPEHPK3PXP"));
        assert_eq!(k.open(&s, "totp:8"), None, "bound to its row");
        assert_eq!(SecretKey::random().open(&s, "totp:7"), None, "another key");
        let mut altered = s.clone();
        altered.pop();
        altered.push(if s.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(k.open(&altered, "totp:7"), None);
        assert_eq!(k.open("JBSWY3DPEHPK3PXP", "totp:7"), None);
    }

    #[test]
    fn keys_are_base64_of_32_bytes_and_never_printed() {
        let k = SecretKey::random();
        let again = SecretKey::from_base64(&format!(" {}\n", k.to_base64())).expect("round trip");
        assert_eq!(again.0, k.0);
        assert!(SecretKey::from_base64("c2hvcnQ=").is_err());
        assert!(SecretKey::from_base64("not base64!").is_err());
        assert_eq!(format!("{k:?}"), "SecretKey(…)");
    }

    #[test]
    fn the_key_comes_from_the_variable_then_the_file_then_beside_the_sqlite_file() {
        let dir = std::env::temp_dir().join(format!("xueji-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("x.db");
        let url = format!("sqlite://{}", db.display());
        let _ = std::fs::remove_file(dir.join("x.db.key"));
        let (k1, src) = SecretKey::resolve(None, None, &url).unwrap().unwrap();
        assert_eq!(src, KeySource::Generated(dir.join("x.db.key")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("x.db.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "owner only");
        }
        let (k2, src) = SecretKey::resolve(None, Some(""), &url).unwrap().unwrap();
        assert_eq!((k2.0, src), (k1.0, KeySource::File(dir.join("x.db.key"))));
        let other = SecretKey::random();
        let f = dir.join("op.key");
        std::fs::write(&f, other.to_base64()).unwrap();
        let f = f.display().to_string();
        let (k3, _) = SecretKey::resolve(None, Some(&f), &url).unwrap().unwrap();
        assert_eq!(k3.0, other.0);
        let (k4, src) = SecretKey::resolve(Some(&k1.to_base64()), Some(&f), &url)
            .unwrap()
            .unwrap();
        assert_eq!((k4.0, src), (k1.0, KeySource::Env));
        assert!(SecretKey::resolve(Some("short"), None, &url).is_err());
        assert!(
            SecretKey::resolve(None, None, "postgres://u@h/db")
                .unwrap()
                .is_none()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
