//! Files a test needs: [`tool`] finds a helper under `tests/tools/`, [`Scratch`] is a private
//! directory under the temp dir (kept, with its path printed, when the test panics).

use super::*;

/// The path of `tests/tools/<name>` (the Python clients and servers the suites run).
pub fn tool(name: &str) -> String {
    format!("{}/tests/tools/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory `paf-<test binary>-<tag>-<pid>-<n>` under the temp dir, removed on drop
/// unless the test is panicking (then its path is printed, for the post-mortem). `n` counts the
/// directories made in this process: suites running at once in one binary use the same tags.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// Creates (or empties) the directory.
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "paf-{}-{tag}-{}-{}",
            env!("CARGO_CRATE_NAME"),
            std::process::id(),
            next_id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
        Scratch(dir)
    }

    /// `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// [`Scratch::path`] as a string, for command lines and configs.
    pub fn s(&self, name: &str) -> String {
        self.path(name).to_str().expect("utf-8 path").to_owned()
    }

    /// Writes `data` to `name` (creating parent directories); returns its path.
    pub fn write(&self, name: &str, data: impl AsRef<[u8]>) -> String {
        let p = self.path(name);
        fs::create_dir_all(p.parent().expect("inside the scratch dir")).unwrap();
        fs::write(&p, data).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        self.s(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if thread::panicking() {
            loud!("harness: files kept in {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}
