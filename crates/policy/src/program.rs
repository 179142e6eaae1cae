//! The program a command runs, as `match.command` sees it: by its file name, or by its path, and
//! whether it lives where only the system's own programs live.
//!
//! An enforcement point that runs commands resolves the program once (through `PATH`, or the
//! path it was given, made absolute with its directories' symlinks resolved) and puts that path
//! in the action as `details.program`; it then executes exactly that file. A rule that names a
//! bare program (`cat *`) and allows it matches only when that program is in one of
//! [`TRUSTED_DIRECTORIES`]: a script named `cat` in the working directory, or one found first
//! through a `PATH` entry the agent added, is not the system's `cat`. Rules that deny or ask for
//! approval match the name wherever the program lives, so renaming nothing lets anything past them.

use countersign_model::Action;
use countersign_model::action::shell_join;

use crate::glob::Glob;

/// Where the operating system keeps its own programs: writable by root alone on any system
/// Countersign supports, so a program found there is the one the rule's author means. Anything
/// else (`/usr/local/bin`, `/opt`, a home directory, the working directory) is named by its full
/// path in the rule.
pub const TRUSTED_DIRECTORIES: [&str; 4] = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"];

/// A `match.command` pattern: one starting with `/` names the program by its full path, any
/// other by its file name.
#[derive(Debug)]
pub(crate) struct CommandPattern {
    pub glob: Glob,
    pub by_path: bool,
}

impl CommandPattern {
    pub fn new(glob: Glob) -> CommandPattern {
        let by_path = glob.as_str().starts_with('/');
        CommandPattern { glob, by_path }
    }
}

/// The command lines an action's patterns are matched against.
#[derive(Debug, Default)]
pub(crate) struct CommandLines {
    /// The program by its file name, then the arguments: from `argv[0]`, and from
    /// `details.program` when that names another file.
    by_name: Vec<String>,
    /// The program by its path: `details.program`, and `argv[0]` when it is an absolute path.
    by_path: Vec<String>,
    /// `details.program`, when it is a clean absolute path.
    program: Option<String>,
    /// Whether `details.program` is in one of [`TRUSTED_DIRECTORIES`].
    trusted: bool,
}

impl CommandLines {
    /// `None` when the action has no `details.argv`.
    pub fn of(action: &Action) -> Option<CommandLines> {
        let argv = action.argv()?;
        let (first, args) = argv.split_first()?;
        let line = |program: &str| shell_join(std::iter::once(program).chain(args.iter().copied()));
        let mut lines = CommandLines::default();
        let add = |list: &mut Vec<String>, text: String| {
            if !list.contains(&text) {
                list.push(text);
            }
        };
        add(&mut lines.by_name, line(file_name(first)));
        if first.starts_with('/') {
            add(&mut lines.by_path, line(first));
        }
        // A program given in some other shape than a clean absolute path is no program at all:
        // the allow rules that need one do not match, the others still see argv.
        let program = action
            .details
            .get("program")
            .and_then(|p| p.as_str())
            .filter(|p| is_clean_absolute(p));
        if let Some(program) = program {
            add(&mut lines.by_name, line(file_name(program)));
            add(&mut lines.by_path, line(program));
            lines.trusted = program
                .rsplit_once('/')
                .is_some_and(|(dir, _)| TRUSTED_DIRECTORIES.contains(&dir));
            lines.program = Some(program.to_owned());
        }
        Some(lines)
    }

    /// Every line the index may file a command rule under.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.by_name.iter().chain(&self.by_path).map(String::as_str)
    }

    /// Whether any of `patterns` fits. An allow rule (`strict`) fits only a resolved program, in a
    /// trusted directory when the pattern names it bare, and only if the pattern fits every line
    /// the action could be read as; any other rule fits if the pattern fits any of them.
    pub fn fit(&self, patterns: &[CommandPattern], strict: bool) -> bool {
        patterns.iter().any(|pattern| {
            let lines = if pattern.by_path {
                &self.by_path
            } else {
                &self.by_name
            };
            if strict {
                self.program.is_some()
                    && (pattern.by_path || self.trusted)
                    && lines.iter().all(|l| pattern.glob.matches(l))
            } else {
                lines.iter().any(|l| pattern.glob.matches(l))
            }
        })
    }
}

fn file_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// `/usr/bin/cat`, not `usr/bin/cat`, `/usr/bin/../../tmp/cat`, `/usr//bin/cat` or `/usr/bin/`:
/// a path whose directory can be compared as text.
fn is_clean_absolute(path: &str) -> bool {
    path.strip_prefix('/').is_some_and(|rest| {
        rest.split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
    })
}
