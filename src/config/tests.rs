use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::domain::ice::IceAuth;
use crate::secret::Secret;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn no_file() -> Overrides {
    Overrides {
        config: Some(PathBuf::from("/dev/null")),
        ..Overrides::default()
    }
}

#[test]
fn defaults_are_the_originals() {
    let c = Config::load_from(&no_file(), &env(&[])).expect("defaults");
    assert_eq!(c.listen.port(), 5000);
    assert_eq!(c.limits.max_participants, 50);
    assert_eq!(c.limits.max_duration_seconds, 18_000);
    assert_eq!(c.limits.daily_limit, 25);
    assert_eq!(c.retention, chrono::Duration::days(3));
    assert_eq!(c.http.body_limit, 16 * 1024);
    assert!(c.database.url.starts_with("surrealkv://"));
    assert!(matches!(c.storage, StorageConfig::Local { .. }));
}

#[test]
fn environment_layers_and_legacy_names() {
    let c = Config::load_from(
        &no_file(),
        &env(&[
            ("PORT", "7000"),
            ("JWT_SECRET", "0123456789abcdef0123"),
            ("AWS_S3_BUCKET", "rec"),
            ("MEET_MEETINGS__MAX_PARTICIPANTS", "7"),
            ("MEET_AUTH__ADMIN_PASSWORD", "12345678"),
            ("FRONTEND_URL", "http://localhost:5173/"),
        ]),
    )
    .expect("valid");
    assert_eq!(c.listen.port(), 7000);
    assert_eq!(c.limits.max_participants, 7);
    assert_eq!(
        c.auth.admin_password.as_ref().map(Secret::expose),
        Some("12345678")
    );
    assert_eq!(
        c.http.cors_origins,
        vec!["http://localhost:5173".to_owned()]
    );
    assert!(matches!(c.storage, StorageConfig::S3(ref s) if s.bucket == "rec"));
    assert_eq!(format!("{:?}", c.auth.jwt_secret), "Some(***)");
}

#[test]
fn ice_servers_are_checked() {
    let ok = Config::from_toml_str(
        r#"
        [[media.ice_servers]]
        urls = ["stun:stun.example.org:3478"]
        [[media.ice_servers]]
        urls = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]
        secret = "shared-with-coturn"
        ttl_seconds = 3600
        [[media.ice_servers]]
        urls = ["turn:other.example.org"]
        username = "meet"
        credential = "pw"
        "#,
    )
    .expect("valid");
    assert_eq!(ok.ice_servers.len(), 3);
    assert!(matches!(ok.ice_servers[1].auth, IceAuth::Rest { ttl, .. } if ttl.as_secs() == 3600));
    for (toml, key) in [
        ("urls = []", "media.ice_servers[0].urls"),
        (r#"urls = ["http://x"]"#, "media.ice_servers[0].urls"),
        (r#"urls = ["stun:"]"#, "media.ice_servers[0].urls"),
        (
            r#"urls = ["turn:t.example.org"]"#,
            "media.ice_servers[0].credential",
        ),
        (
            r#"urls = ["turn:t"]
            username = "u""#,
            "media.ice_servers[0].username",
        ),
        (
            r#"urls = ["turn:t"]
            username = "u"
            credential = "c"
            secret = "s""#,
            "media.ice_servers[0].username",
        ),
        (
            r#"urls = ["turn:t"]
            secret = "s"
            ttl_seconds = 10"#,
            "media.ice_servers[0].ttl_seconds",
        ),
    ] {
        let err = Config::from_toml_str(&format!("[[media.ice_servers]]\n{toml}"))
            .expect_err(toml)
            .to_string();
        assert!(err.contains(key), "{toml}: {err}");
    }
}

#[test]
fn the_retired_engines_keys_name_what_replaced_them() {
    for toml in [
        "udp_port_min = 40000",
        "udp_port_max = 40999",
        "engine = \"webrtc\"",
    ] {
        let err = Config::from_toml_str(&format!("[media]\n{toml}"))
            .expect_err(toml)
            .to_string();
        let key = toml.split(' ').next().unwrap_or_default();
        assert!(err.contains(&format!("media.{key}")), "{toml}: {err}");
        assert!(
            err.contains("media.udp_port") || err.contains("one media engine"),
            "{toml}: {err}"
        );
    }
    // The port range's error says what to set instead.
    let err = Config::from_toml_str("[media]\nudp_port_min = 1").expect_err("range");
    assert!(
        err.to_string().contains("media.udp_port (default 40000)"),
        "{err}"
    );
    // `engine = "rtc"` (what the docs said before the retirement) is still accepted.
    let c = Config::from_toml_str("[media]\nengine = \"rtc\"").expect("rtc");
    assert_eq!(c.media.shard_ports, vec![40_000]);
}

#[test]
fn shards_are_one_per_core_on_one_port_unless_set() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let c = Config::from_toml_str("").expect("defaults");
    assert_eq!(c.media.shard_ports, vec![40_000]);
    assert_eq!(c.media.shards, cores.min(64));
    let c = Config::from_toml_str("[media]\nudp_port = 5000\nshards = 3").expect("three");
    assert_eq!((c.media.shard_ports, c.media.shards), (vec![5000], 3));
    // Several ports: one shard each.
    let c = Config::from_toml_str("[media]\nudp_ports = [5000, 5001]").expect("ports");
    assert_eq!(c.media.shards, 2);
    for (toml, says) in [
        ("shards = 0", "between 1 and 64"),
        ("shards = 65", "between 1 and 64"),
        ("udp_ports = [5000, 5001]\nshards = 2", "one shard per port"),
    ] {
        let err = Config::from_toml_str(&format!("[media]\n{toml}"))
            .expect_err(toml)
            .to_string();
        assert!(
            err.contains("media.shards") && err.contains(says),
            "{toml}: {err}"
        );
    }
}

#[test]
fn unknown_keys_are_named() {
    let err = Config::load_from(&no_file(), &env(&[("MEET_MEETINGS__MAX_PEOPLE", "3")]))
        .expect_err("unknown");
    assert!(err.to_string().contains("max_people"), "{err}");
    let err = Config::from_toml_str("[server]\nlisten = \"1.2.3.4:5\"\nbogus = 1\n")
        .expect_err("unknown");
    assert!(err.to_string().contains("bogus"), "{err}");
}

#[test]
fn bad_values_name_the_key() {
    let err = Config::from_toml_str("[meetings]\nmax_participants = 0\n").expect_err("zero");
    assert!(
        err.to_string().contains("meetings.max_participants"),
        "{err}"
    );
    let err = Config::from_toml_str("[meetings]\ntime_zone = \"Mars/Olympus\"\n").expect_err("tz");
    assert!(err.to_string().contains("meetings.time_zone"), "{err}");
    let err = Config::from_toml_str("[jobs]\ncleanup_schedule = \"every now and then\"\n")
        .expect_err("cron");
    assert!(err.to_string().contains("jobs.cleanup_schedule"), "{err}");
}

#[test]
fn recording_settings_are_bounded() {
    let at = |toml: &str| Config::from_toml_str(toml).map(|c| c.recordings);
    for (ok, bad) in [("6000", "5999"), ("256000", "256001")] {
        let c = at(&format!("[recordings]\nmix_bitrate = {ok}\n")).expect("in range");
        assert_eq!(c.mix_bitrate.to_string(), ok);
        let err = at(&format!("[recordings]\nmix_bitrate = {bad}\n")).expect_err(bad);
        assert!(err.to_string().contains("recordings.mix_bitrate"), "{err}");
    }
    for ok in [0u8, 10] {
        let c = at(&format!("[recordings]\nmix_complexity = {ok}\n")).expect("in range");
        assert_eq!(c.mix_complexity, ok);
    }
    let err = at("[recordings]\nmix_complexity = 11\n").expect_err("11");
    assert!(
        err.to_string().contains("recordings.mix_complexity"),
        "{err}"
    );
    assert_eq!(
        at("").expect("defaults").mix_complexity,
        DEFAULT_MIX_COMPLEXITY
    );
    let s3 = |mib: u32| {
        Config::from_toml_str(&format!(
            "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"b\"\nregion = \"r\"\nmultipart_threshold_mib = {mib}\n"
        ))
    };
    assert!(s3(5).is_ok() && s3(4096).is_ok(), "the bounds are allowed");
    for bad in [4, 4097] {
        let err = s3(bad).expect_err("out of range");
        assert!(
            err.to_string()
                .contains("storage.s3.multipart_threshold_mib"),
            "{err}"
        );
    }
}

#[test]
fn listen_accepts_a_bare_port() {
    assert_eq!(parse_listen("8080").expect("port").port(), 8080);
    assert_eq!(
        parse_listen("0.0.0.0:1").expect("addr").to_string(),
        "0.0.0.0:1"
    );
    assert!(parse_listen("nope").is_err());
}

#[test]
fn shipped_meet_toml_parses() {
    let text = include_str!("../../meet.toml");
    Config::from_toml_str(text).expect("the shipped meet.toml is valid");
}
