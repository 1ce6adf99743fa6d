//! A Python virtual environment with pinned third-party OAuth 2.0 and JWT libraries
//! (`interop/requirements.txt`), for the interoperability tests. Made on first use under the
//! workspace's `target/` directory and reused while the requirements stay the same; tests that
//! run at once wait for one another on a lock file. A machine that cannot make it fails the
//! test with the reason: interop tests never skip.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

const REQUIREMENTS: &str = include_str!("../interop/requirements.txt");

/// The virtual environment's `python`, with the requirements installed.
pub fn python() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/interop");
    fs::create_dir_all(&dir).expect("create target/interop");
    let lock = File::create(dir.join("venv.lock")).expect("lock file");
    lock.lock().expect("lock target/interop/venv.lock");
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("tessera-requirements.txt");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(REQUIREMENTS) {
        let _ = fs::remove_dir_all(&venv);
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        let requirements = dir.join("requirements.txt");
        fs::write(&requirements, REQUIREMENTS).expect("write requirements");
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements));
        fs::write(&stamp, REQUIREMENTS).expect("write stamp");
    }
    drop(lock);
    python
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is python3 with venv installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed (PyPI must be reachable to set up the interop tests):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
