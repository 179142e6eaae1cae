//! The `[slack]` table of the broker's configuration, checked. Secrets never live in the file:
//! it names the environment variables that hold them, and the binary reads those.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlackTable {
    #[serde(default = "default_token_env")]
    bot_token_env: String,
    #[serde(default = "default_secret_env")]
    signing_secret_env: String,
    channel: String,
    #[serde(default)]
    team_id: Option<String>,
    #[serde(default)]
    api_url: Option<String>,
    #[serde(default)]
    retry_attempts: Option<u32>,
}

fn default_token_env() -> String {
    "SLACK_BOT_TOKEN".into()
}

fn default_secret_env() -> String {
    "SLACK_SIGNING_SECRET".into()
}

/// The Slack integration's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The environment variable holding the bot token (`xoxb-…`).
    pub bot_token_env: String,
    /// The environment variable holding the app's signing secret.
    pub signing_secret_env: String,
    /// Where every request is posted (besides the channels its rules name): `#approvals` or an id.
    pub channel: String,
    /// When set, clicks from any other Slack workspace are refused.
    pub team_id: Option<String>,
    /// Slack's Web API (`https://slack.com/api`); another address only for tests or a proxy.
    pub api_url: String,
    /// How many times a Web API call is tried before the delivery counts as failed.
    pub retry_attempts: u32,
    /// The first pause between tries; it doubles each time (Slack's `Retry-After` wins on 429).
    pub retry_base: Duration,
}

/// The secrets, read from the environment by the binary.
#[derive(Clone)]
pub struct Secrets {
    pub bot_token: String,
    pub signing_secret: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

impl Settings {
    /// Checks the `[slack]` table; every problem is reported, each naming the key and the fix.
    pub fn parse(table: &toml::Table) -> Result<Settings, Vec<String>> {
        let raw: SlackTable = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| vec![format!("slack: {}", e.message().trim_end())])?;
        let mut errors = Vec::new();
        for (key, name) in [
            ("bot_token_env", &raw.bot_token_env),
            ("signing_secret_env", &raw.signing_secret_env),
        ] {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                errors.push(format!(
                    "slack.{key}: '{name}' is not an environment variable name; write the variable's name (e.g. SLACK_BOT_TOKEN), never the secret itself"
                ));
            }
            if name.starts_with("xox") || name.len() > 64 {
                errors.push(format!(
                    "slack.{key} looks like a secret: put the secret in an environment variable and name the variable here"
                ));
            }
        }
        if let Err(message) = crate::address::check(&raw.channel) {
            errors.push(format!("slack.channel: {message}"));
        }
        if let Some(team) = &raw.team_id
            && !(team.starts_with('T')
                && team.len() >= 9
                && team.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            errors.push(format!(
                "slack.team_id: '{team}' is not a Slack workspace id (like T0123ABCDE)"
            ));
        }
        let api_url = raw
            .api_url
            .unwrap_or_else(|| "https://slack.com/api".into())
            .trim_end_matches('/')
            .to_owned();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            errors.push(format!(
                "slack.api_url: '{api_url}' must start with https:// (leave it out to use Slack)"
            ));
        }
        let retry_attempts = raw.retry_attempts.unwrap_or(6);
        if retry_attempts == 0 || retry_attempts > 20 {
            errors.push(format!(
                "slack.retry_attempts: {retry_attempts} is out of range; write 1 to 20 (default 6)"
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Settings {
            bot_token_env: raw.bot_token_env,
            signing_secret_env: raw.signing_secret_env,
            channel: raw.channel,
            team_id: raw.team_id,
            api_url,
            retry_attempts,
            retry_base: Duration::from_millis(250),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, Vec<String>> {
        Settings::parse(&text.parse::<toml::Table>().unwrap_or_default())
    }

    #[test]
    fn defaults_and_errors() {
        let s = parse("channel = \"#approvals\"").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(s.bot_token_env, "SLACK_BOT_TOKEN");
        assert_eq!(s.api_url, "https://slack.com/api");
        let errors =
            parse("channel = \"Approvals\"\nbot_token_env = \"xoxb-123-456\"\nteam_id = \"acme\"")
                .unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(
            errors[0].contains(
                "slack.bot_token_env: 'xoxb-123-456' is not an environment variable name"
            )
        );
        assert!(errors[1].contains("looks like a secret"));
        assert!(errors[2].starts_with("slack.channel: notify target 'slack:Approvals'"));
        assert!(errors[3].starts_with("slack.team_id"));
        let unknown = parse("channel = \"#a\"\nbot_token = \"x\"").unwrap_err();
        assert!(
            unknown[0].contains("unknown field `bot_token`"),
            "{unknown:?}"
        );
    }
}
