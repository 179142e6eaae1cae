//! The principals of a test broker's configuration, and the API token each authenticates with.

use countersign_model::Digest;

/// One principal of a test configuration: id, kind (`agent` or `human`), and the rest of its
/// `[[principals]]` table as TOML lines (`groups = ["dba"]`, say).
pub type Principal<'a> = (&'a str, &'a str, &'a str);

/// The API token of principal `id` in every test configuration.
pub fn token(id: &str) -> String {
    format!("token-of-{id}")
}

/// The `[[principals]]` tables of a configuration, each carrying the SHA-256 of its [`token`].
pub fn principals_toml(principals: &[Principal<'_>]) -> String {
    let mut text = String::new();
    for (id, kind, extra) in principals {
        text.push_str(&format!(
            "\n[[principals]]\nid = \"{id}\"\nkind = \"{kind}\"\n{extra}\ntoken_sha256 = \"{}\"\n",
            Digest::of(token(id).as_bytes()).hex()
        ));
    }
    text
}
