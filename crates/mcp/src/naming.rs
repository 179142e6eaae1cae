//! The server's NAME in resources `mcp:NAME/TOOL`: given with `--name`, or derived from the
//! upstream command or URL so that common setups match policy rules without configuration
//! (`npx -y @modelcontextprotocol/server-github` is `github`, `uvx mcp-server-fetch` is `fetch`,
//! `https://mcp.example.com/mcp` is `mcp.example.com`).

/// Programs that start the real server named by their first argument.
const LAUNCHERS: [&str; 14] = [
    "npx", "pnpx", "bunx", "uvx", "pipx", "node", "nodejs", "deno", "bun", "python", "python3",
    "uv", "npm", "pnpm",
];

/// Words between a launcher and the server it starts (`uv run`, `pipx run`, `npm exec`).
const LAUNCHER_VERBS: [&str; 4] = ["run", "exec", "x", "dlx"];

/// Prefixes and suffixes that say "MCP server" rather than which one.
const PREFIXES: [&str; 4] = ["mcp-server-", "server-", "mcp-", "mcp_server_"];
const SUFFIXES: [&str; 4] = ["-mcp-server", "-server", "-mcp", "_mcp"];

/// Whether `name` can be a server name: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The name for a stdio upstream: the program's file name or, for a launcher, the package or
/// script it starts, without scope, version, extension and "mcp"/"server" affixes.
pub fn from_command(command: &[String]) -> Option<String> {
    let (program, args) = command.split_first()?;
    let program_name = stem(program);
    let word = if LAUNCHERS.contains(&program_name.as_str()) {
        args.iter()
            .map(String::as_str)
            .filter(|arg| !arg.starts_with('-'))
            .find(|arg| !LAUNCHER_VERBS.contains(arg))
            .map_or(program_name, stem)
    } else {
        program_name
    };
    tidy(&word)
}

/// The name for an HTTP upstream: the URL's host.
pub fn from_url(url: &reqwest::Url) -> Option<String> {
    tidy(url.host_str()?.trim_matches(['[', ']']))
}

/// The last path segment, without a version (`@1.2`, `==1.2`) or a script extension.
fn stem(word: &str) -> String {
    let word = word.trim_end_matches('/');
    let last = word.rsplit('/').next().unwrap_or(word);
    let last = last.split("==").next().unwrap_or(last);
    // `@scope/name@1.2` has lost its scope above; a leading `@` is never a version.
    let last = match last.char_indices().skip(1).find(|&(_, c)| c == '@') {
        Some((at, _)) => &last[..at],
        None => last,
    };
    let last = last.split(':').next().unwrap_or(last);
    let last = [".js", ".mjs", ".cjs", ".ts", ".py", ".exe"]
        .iter()
        .find_map(|ext| last.strip_suffix(ext))
        .unwrap_or(last);
    last.to_ascii_lowercase()
}

fn tidy(word: &str) -> Option<String> {
    let mut name = word.to_ascii_lowercase();
    for prefix in PREFIXES {
        if let Some(rest) = name.strip_prefix(prefix).filter(|rest| !rest.is_empty()) {
            name = rest.to_owned();
            break;
        }
    }
    for suffix in SUFFIXES {
        if let Some(rest) = name.strip_suffix(suffix).filter(|rest| !rest.is_empty()) {
            name = rest.to_owned();
            break;
        }
    }
    is_valid(&name).then_some(name)
}
