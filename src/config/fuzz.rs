//! The configuration loader on any text, any value of a known key and any environment
//! (tests/fuzz/README.md): `Ok`, or an error that names what is wrong; never a panic.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;

use super::*;
use crate::fuzzing;

/// The keys meet.toml documents (set or commented out), with their sections.
fn known_keys() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(fuzzing::corpus_dir("config").join("meet.toml"))
        .expect("meet.toml seed");
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.trim_matches(['[', ']']).to_owned();
        } else if let Some((key, _)) = line.split_once(" = ")
            && !key.is_empty()
            && key.bytes().all(|c| c.is_ascii_lowercase() || c == b'_')
        {
            keys.push((section.clone(), key.to_owned()));
        }
    }
    keys.sort();
    keys.dedup();
    assert!(keys.len() > 60, "{} keys", keys.len());
    keys
}

/// A TOML value, as text.
fn value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        prop_oneof![-3i64..3, 0i64..70_000, Just(i64::MAX), Just(i64::MIN)]
            .prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| toml::Value::Float(f).to_string()),
        Just("nan".to_owned()),
        Just("-inf".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        "\\PC{0,24}".prop_map(|s| toml::Value::String(s).to_string()),
        prop::sample::select(vec![
            "\"\"",
            "\" \"",
            "\"0\"",
            "\"-1\"",
            "\"1e9\"",
            "\"0.0.0.0\"",
            "\"::1\"",
            "\"[::]:0\"",
            "\"127.0.0.1:99999\"",
            "\":5000\"",
            "\"65536\"",
            "\"/\"",
            "\"/dev/null\"",
            "\"mem://\"",
            "\"surrealkv://\"",
            "\"s3\"",
            "\"local\"",
            "\"json\"",
            "\"text\"",
            "\"* * * * * *\"",
            "\"0 0 31 2 * *\"",
            "\"UTC\"",
            "\"Europe/Paris\"",
            "\"stun:\"",
            "\"turn:a\"",
            "\"x=\"",
            "1979-05-27T07:32:00Z",
            "07:32:00",
            "1979-05-27",
        ])
        .prop_map(str::to_owned),
    ];
    scalar.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(("[a-z_]{1,10}", inner), 0..3).prop_map(|kv| {
                let kv: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", kv.join(", "))
            }),
        ]
    })
}

/// An error that says which key (or section, or file) is wrong.
fn names(err: &ConfigError, section: &str, key: &str) -> bool {
    let text = err.to_string();
    text.contains(key) || (!section.is_empty() && text.contains(section))
}

fn key_value() -> impl Strategy<Value = (String, String, String)> {
    (prop::sample::select(known_keys()), value()).prop_map(|((s, k), v)| (s, k, v))
}

proptest! {
    #![proptest_config(fuzzing::config(10_000))]

    /// One known key set to anything (in its section, or in an array table for the ICE
    /// servers): accepted, or refused by an error naming it.
    #[test]
    fn fuzz_config_known_keys(kvs in prop::collection::vec(key_value(), 1..3)) {
        for (section, key, value) in &kvs {
            let header = if section == "media.ice_servers" {
                format!("[[{section}]]\nurls = [\"stun:a.example\"]\n")
            } else if section.is_empty() {
                String::new()
            } else {
                format!("[{section}]\n")
            };
            let text = format!("{header}{key} = {value}\n");
            if let Err(e) = Config::from_toml_str(&text) {
                prop_assert!(names(&e, section, key), "{}\n{}", text, e);
            }
        }
        // Several at once: never a panic, and an error with a message.
        let mut text = String::new();
        for (section, key, value) in &kvs {
            text.push_str(&format!("[{section}]\n{key} = {value}\n"));
        }
        if let Err(e) = Config::from_toml_str(&text) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// Any text, the shipped files changed anyhow: `Ok` or an error, never a panic.
    #[test]
    fn fuzz_config_any_text(
        text in prop_oneof![
            3 => fuzzing::mutated_text(fuzzing::text_seeds("config"), 8),
            1 => "(\\[[a-z_.]{0,12}\\]\n)?([a-z_]{1,12} = [\\PC]{0,12}\n){0,4}",
            1 => "\\PC{0,64}",
        ],
    ) {
        if let Err(e) = Config::from_toml_str(&text) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// Any `MEET_SECTION__KEY` environment over no file: accepted, or an error naming it.
    #[test]
    fn fuzz_config_environment(
        (section, key) in prop::sample::select(known_keys()),
        raw in prop_oneof!["\\PC{0,16}", "[0-9.:-]{0,8}", Just("true".to_owned())],
    ) {
        let var = format!("MEET_{}__{}", section.replace('.', "__"), key).to_ascii_uppercase();
        let env: BTreeMap<String, String> = [(var.clone(), raw.clone())].into_iter().collect();
        let overrides = Overrides {
            config: Some(PathBuf::from("/dev/null")),
            ..Overrides::default()
        };
        if let Err(e) = Config::load_from(&overrides, &env) {
            prop_assert!(
                names(&e, &section, &key) || e.to_string().contains(&var),
                "{}={}: {}", var, raw, e
            );
        }
    }
}

/// Found by `fuzz_config_known_keys`: `chrono::Duration::hours` panicked on this value.
#[test]
fn fuzz_regression_a_huge_archive_after_hours_is_named_not_a_panic() {
    let err = Config::from_toml_str("[meetings]\narchive_after_hours = 2562047788016\n")
        .expect_err("too large");
    assert!(
        err.to_string().contains("meetings.archive_after_hours"),
        "{err}"
    );
    let ok =
        Config::from_toml_str("[meetings]\narchive_after_hours = 876000\n").expect("a century");
    assert_eq!(ok.archive_after, chrono::Duration::hours(876_000));
}

/// Found by `fuzz_config_environment`: tracing-subscriber's filter parser panicked on this
/// level ("end byte index 4 is not a char boundary").
#[test]
fn fuzz_regression_a_non_ascii_log_level_is_named_not_a_panic() {
    let env: BTreeMap<String, String> = [("MEET_LOGGING__LEVEL".to_owned(), " 𖭽=".to_owned())]
        .into_iter()
        .collect();
    let overrides = Overrides {
        config: Some(PathBuf::from("/dev/null")),
        ..Overrides::default()
    };
    let err = Config::load_from(&overrides, &env).expect_err("refused");
    assert!(err.to_string().contains("logging.level"), "{err}");
    let err = Config::from_toml_str("[logging]\nlevel = \"é=info\"\n").expect_err("refused");
    assert!(err.to_string().contains("logging.level"), "{err}");
}
