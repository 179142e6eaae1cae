//! Finding the program a command runs, once, before anything is asked: the file that the action
//! names (`details.program`), that the policy decides on and that is executed, without a second
//! look through `PATH`.

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Where programs are looked for when `PATH` is not set (as the C library does).
const DEFAULT_PATH: &str = "/usr/bin:/bin";

/// The absolute path of `program` as a shell would find it: given with a `/`, relative to `cwd`;
/// otherwise the first executable file of that name in `path` (an empty or relative entry is
/// relative to `cwd`). The directory is resolved through its symlinks, so the path names where
/// the file really is; the file name is kept, so a program that reads its own name (pg_wrapper
/// behind `pg_dump`, busybox) still sees it.
pub fn program(program: &str, cwd: &Path, path: Option<&OsStr>) -> io::Result<String> {
    if program.is_empty() {
        return Err(not_found("the command is empty"));
    }
    let found = if program.contains('/') {
        cwd.join(program)
    } else {
        let path = path.unwrap_or(OsStr::new(DEFAULT_PATH));
        std::env::split_paths(path)
            .map(|dir| cwd.join(dir).join(program))
            .find(is_executable_file)
            .ok_or_else(|| {
                not_found(&format!(
                    "command not found: no program named {program} in PATH"
                ))
            })?
    };
    let (Some(dir), Some(name)) = (found.parent(), found.file_name()) else {
        return Err(not_found(&format!("{program} names no file")));
    };
    let dir = dir
        .canonicalize()
        .map_err(|e| io::Error::new(e.kind(), format!("{program}: {e}")))?;
    let resolved = dir.join(name);
    let metadata = std::fs::metadata(&resolved)
        .map_err(|e| io::Error::new(e.kind(), format!("{program}: {e}")))?;
    if !metadata.is_file() || metadata.permissions().mode() & 0o111 == 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{program} is not an executable file"),
        ));
    }
    resolved.into_os_string().into_string().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the path of {program} is not valid UTF-8, so no rule could name it"),
        )
    })
}

fn is_executable_file(path: &PathBuf) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn not_found(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, message.to_owned())
}
