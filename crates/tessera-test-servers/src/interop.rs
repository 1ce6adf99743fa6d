//! Third-party OAuth 2.0 and JWT libraries for the interoperability tests, pinned in `interop/`:
//! a Python virtual environment (`requirements.txt`) and a Node.js `node_modules`
//! (`package.json`). Each is made on first use under the workspace's `target/interop/` and reused
//! while its pin file stays the same; tests that run at once wait for one another on a lock
//! file. A machine that cannot make them fails the test with the reason: interop tests never
//! skip.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

const REQUIREMENTS: &str = include_str!("../interop/requirements.txt");
const PACKAGE_JSON: &str = include_str!("../interop/package.json");

fn interop_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/interop");
    fs::create_dir_all(&dir).expect("create target/interop");
    dir
}

/// Makes `dir` with `setup` unless its stamp says it was made from `pins`, under a lock.
fn prepared(name: &str, pins: &str, setup: impl FnOnce(&Path)) -> PathBuf {
    let root = interop_dir();
    let lock = File::create(root.join(format!("{name}.lock"))).expect("lock file");
    lock.lock().expect("lock");
    let dir = root.join(name);
    let stamp = dir.join(".tessera-pins");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(pins) {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create dir");
        setup(&dir);
        fs::write(&stamp, pins).expect("write stamp");
    }
    drop(lock);
    dir
}

/// The virtual environment's `python`, with the requirements installed (PyPI).
pub fn python() -> PathBuf {
    let venv = prepared("venv", REQUIREMENTS, |venv| {
        run(Command::new("python3").args(["-m", "venv"]).arg(venv));
        let requirements = venv.join("requirements.txt");
        fs::write(&requirements, REQUIREMENTS).expect("write requirements");
        run(Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements));
    });
    venv.join("bin/python")
}

/// A directory with `node_modules` installed from the pinned `package.json` (npm). Scripts that
/// import the packages must be placed in it, as Node resolves imports from a script's folder.
pub fn node() -> PathBuf {
    prepared("node", PACKAGE_JSON, |dir| {
        fs::write(dir.join("package.json"), PACKAGE_JSON).expect("write package.json");
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent"])
            .current_dir(dir));
    })
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (python3 with venv, and node with npm, are needed)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed (PyPI and npm must be reachable to set up the interop tests):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
