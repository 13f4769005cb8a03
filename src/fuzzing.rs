//! What the property tests of the parsers share (`cargo test --lib fuzz`, tests/fuzz/README.md):
//! their seed corpus in `tests/fuzz/corpus/<target>/`, mutations of those seeds (bytes
//! flipped, set, inserted, removed, duplicated; the input cut short) and a case count that
//! `PROPTEST_CASES` raises for a long run.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

/// proptest's configuration for a target: `cases` unless `PROPTEST_CASES` says otherwise (a
/// count chosen so that the whole set runs in about a minute in a debug build).
pub fn config(cases: u32) -> Config {
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    // The shrinker's steps are bounded too: a failure is still reported within seconds.
    c.max_shrink_iters = 2_000;
    c
}

/// The folder of a target's seeds.
pub fn corpus_dir(target: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target)
}

/// Every seed of a target, in file-name order (at least one: a missing corpus is an error).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// The seeds as text (the targets whose inputs are text).
pub fn text_seeds(target: &str) -> Vec<String> {
    seeds(target)
        .into_iter()
        .map(|s| String::from_utf8_lossy(&s).into_owned())
        .collect()
}

/// One change to an input.
#[derive(Debug, Clone)]
pub enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    Duplicate(Index, usize),
    Truncate(Index),
}

impl Mutation {
    pub fn apply(&self, b: &mut Vec<u8>) {
        let at = |i: &Index, n: usize| if n == 0 { 0 } else { i.index(n) };
        match self {
            Self::Flip(i, bit) if !b.is_empty() => {
                let i = at(i, b.len());
                b[i] ^= 1 << (bit % 8);
            }
            Self::Set(i, v) if !b.is_empty() => {
                let i = at(i, b.len());
                b[i] = *v;
            }
            Self::Insert(i, bytes) => {
                let i = at(i, b.len() + 1);
                b.splice(i..i, bytes.iter().copied());
            }
            Self::Remove(i, n) if !b.is_empty() => {
                let i = at(i, b.len());
                let end = (i + n).min(b.len());
                b.drain(i..end);
            }
            Self::Duplicate(i, n) if !b.is_empty() => {
                let i = at(i, b.len());
                let end = (i + n).min(b.len());
                let copy: Vec<u8> = b[i..end].to_vec();
                b.splice(i..i, copy);
            }
            Self::Truncate(i) => {
                let n = at(i, b.len() + 1);
                b.truncate(n);
            }
            _ => {}
        }
    }
}

/// Bytes that matter to most parsers: separators, digits, the extremes.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        prop::sample::select(&b"\0\r\n =:;,-/.0123456789\x7f\x80\xff[]\"{}"[..]),
    ]
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => (any::<Index>(), interesting_byte()).prop_map(|(i, b)| Mutation::Set(i, b)),
        2 => (any::<Index>(), prop::collection::vec(interesting_byte(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

/// A seed with up to `max` mutations applied.
pub fn mutated(seeds: Vec<Vec<u8>>, max: usize) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    (0..n, prop::collection::vec(mutation(), 0..=max)).prop_map(move |(i, ms)| {
        let mut b = seeds[i].clone();
        for m in &ms {
            m.apply(&mut b);
        }
        b
    })
}

/// A text seed with up to `max` mutations applied (invalid UTF-8 replaced).
pub fn mutated_text(seeds: Vec<String>, max: usize) -> impl Strategy<Value = String> {
    mutated(seeds.into_iter().map(String::into_bytes).collect(), max)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Writes a seed file (the `write_seeds` tests, run once with `--ignored`).
pub fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

/// Any JSON value, a few levels deep.
pub fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
