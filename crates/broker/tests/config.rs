//! `[listener]` in the configuration: its defaults, its values, and errors naming the key.

use std::time::Duration;

use countersign_broker::{Config, ListenerLimits};

const BASE: &str = "data_dir = \"data\"\npolicy = \"policy.toml\"\n";

#[test]
fn the_listener_limits_default_to_sane_values_and_can_be_set() {
    let config = Config::parse(BASE).unwrap();
    assert_eq!(config.listener, ListenerLimits::default());
    assert_eq!(config.listener.header_timeout, Duration::from_secs(10));
    assert_eq!(config.listener.body_timeout, Duration::from_secs(30));
    assert_eq!(config.listener.max_connections, 4096);
    assert_eq!(config.listener.max_connections_per_peer, 256);

    let text = format!(
        "{BASE}[listener]\nheader_timeout = \"5s\"\nbody_timeout = \"1m\"\nmax_connections = 100\nmax_connections_per_peer = 10\n"
    );
    let limits = Config::parse(&text).unwrap().listener;
    assert_eq!(
        limits,
        ListenerLimits {
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(60),
            max_connections: 100,
            max_connections_per_peer: 10,
        }
    );
}

#[test]
fn bad_listener_limits_are_refused_naming_the_key() {
    let text = format!(
        "{BASE}[listener]\nheader_timeout = \"0s\"\nbody_timeout = \"soon\"\nmax_connections = 0\n"
    );
    let errors = Config::parse(&text).unwrap_err().0;
    assert_eq!(
        errors,
        [
            "listener.header_timeout: '0s' is not a duration of at least 1s (write e.g. \"10s\" or \"1m\")",
            "listener.body_timeout: 'soon' is not a duration of at least 1s (write e.g. \"10s\" or \"1m\")",
            "listener.max_connections must be at least 1; leave it out for the default",
        ]
    );
    let text = format!("{BASE}[listener]\nidle = \"1s\"\n");
    let errors = Config::parse(&text).unwrap_err().0;
    assert!(errors[0].contains("unknown field `idle`"), "{errors:?}");
}
