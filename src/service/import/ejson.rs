//! Reading a `mongoexport` file: one document per line (the default), or a JSON array
//! (`--jsonArray`, compact or `--pretty`), in canonical or relaxed Extended JSON. Pure: text in,
//! plain JSON documents out, each with the line it starts on.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// A document of the file, Extended JSON already made plain ([`plain`]).
#[derive(Debug)]
pub struct Located {
    pub line: usize,
    pub doc: Map<String, Value>,
}

/// A part of the file that is not a document.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed {
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub docs: Vec<Located>,
    pub malformed: Vec<Malformed>,
}

/// Splits a file into documents. A line (or array element) that is not a JSON object is
/// reported and skipped; the rest is read all the same.
pub fn read(text: &str) -> Parsed {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('[') {
        read_array(text)
    } else {
        read_lines(text)
    }
}

fn read_lines(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if !line.is_empty() {
            parsed.push(i + 1, serde_json::from_str::<Value>(line));
        }
    }
    parsed
}

fn read_array(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let lines = LineIndex::new(text);
    let bytes = text.as_bytes();
    // Just past the opening bracket.
    let mut pos = text.find('[').map_or(text.len(), |i| i + 1);
    loop {
        while pos < bytes.len() && (bytes[pos].is_ascii_whitespace() || bytes[pos] == b',') {
            pos += 1;
        }
        match bytes.get(pos) {
            None => {
                parsed.malformed.push(Malformed {
                    line: lines.line(pos),
                    reason: "the array is not closed (a truncated export?)".into(),
                });
                return parsed;
            }
            Some(b']') => return parsed,
            Some(_) => {}
        }
        let mut stream = serde_json::Deserializer::from_str(&text[pos..]).into_iter::<Value>();
        let value = stream.next();
        let end = pos + stream.byte_offset();
        match value {
            Some(Ok(v)) => {
                parsed.push(lines.line(pos), Ok(v));
                pos = end;
            }
            Some(Err(e)) => {
                parsed.malformed.push(Malformed {
                    line: lines.line(pos),
                    reason: format!("not valid JSON: {e}"),
                });
                // Resume after the broken element, found by its braces.
                match skip_value(bytes, pos) {
                    Some(next) => pos = next,
                    None => return parsed,
                }
            }
            None => return parsed,
        }
    }
}

impl Parsed {
    fn push(&mut self, line: usize, value: serde_json::Result<Value>) {
        match value {
            Ok(Value::Object(doc)) => match plain(Value::Object(doc)) {
                Value::Object(doc) => self.docs.push(Located { line, doc }),
                _ => self.malformed.push(Malformed {
                    line,
                    reason: "not a document".into(),
                }),
            },
            Ok(_) => self.malformed.push(Malformed {
                line,
                reason: "not a document (a JSON object)".into(),
            }),
            Err(e) => self.malformed.push(Malformed {
                line,
                reason: format!("not valid JSON: {e}"),
            }),
        }
    }
}

/// The end of the bracketed value starting at `start`, counting brackets outside strings;
/// `None` when it never closes.
fn skip_value(bytes: &[u8], start: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b',' if depth == 0 => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Line numbers of byte offsets.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> Self {
        Self(text.match_indices('\n').map(|(i, _)| i).collect())
    }

    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&nl| nl < offset) + 1
    }
}

/// Extended JSON made plain: `{"$oid": s}` becomes `s`, a `$date` an RFC 3339 string, and
/// `$numberInt`, `$numberLong`, `$numberDouble`, `$numberDecimal` numbers (`NaN` and the
/// infinities `null`). Other wrappers (`$binary`, `$timestamp`, ...) stay as they are.
pub fn plain(v: Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.into_iter().map(plain).collect()),
        Value::Object(map) => match unwrap(&map) {
            Some(v) => v,
            None => Value::Object(map.into_iter().map(|(k, v)| (k, plain(v))).collect()),
        },
        other => other,
    }
}

fn unwrap(map: &Map<String, Value>) -> Option<Value> {
    let mut entries = map.iter();
    let (key, value) = entries.next()?;
    if entries.next().is_some() {
        return None;
    }
    match (key.as_str(), value) {
        ("$oid", Value::String(s)) => Some(Value::String(s.clone())),
        ("$numberInt" | "$numberLong", Value::String(s)) => s.parse::<i64>().ok().map(Value::from),
        ("$numberDouble" | "$numberDecimal", Value::String(s)) => Some(
            s.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number),
        ),
        ("$date", d) => {
            date(d).map(|t| Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true)))
        }
        _ => None,
    }
}

/// A `$date`'s value: an ISO string (relaxed), milliseconds as `{"$numberLong"}` (canonical) or
/// as a bare number (older exports).
fn date(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => parse_time(s),
        Value::Number(n) => n.as_i64().and_then(DateTime::from_timestamp_millis),
        Value::Object(m) => match m.get("$numberLong") {
            Some(Value::String(s)) => s
                .parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_millis),
            _ => None,
        },
        _ => None,
    }
}

/// RFC 3339, or the `+0000` offset of older mongoexport versions.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn extended_json_becomes_plain() {
        let canonical = json!({
            "_id": {"$oid": "65b1f0c2a1b2c3d4e5f60718"},
            "createdAt": {"$date": {"$numberLong": "1738404000000"}},
            "n": {"$numberInt": "7"},
            "big": {"$numberLong": "9007199254740993"},
            "size": {"$numberDouble": "1.5"},
            "nan": {"$numberDouble": "NaN"},
            "participants": [{"$oid": "65b1f0c2a1b2c3d4e5f60719"}],
            "privateMode": {"isActive": false, "participantId": {"$oid": "65b1f0c2a1b2c3d4e5f6071a"}},
            "bin": {"$binary": {"base64": "", "subType": "00"}},
        });
        assert_eq!(
            plain(canonical),
            json!({
                "_id": "65b1f0c2a1b2c3d4e5f60718",
                "createdAt": "2025-02-01T10:00:00.000Z",
                "n": 7,
                "big": 9_007_199_254_740_993_i64,
                "size": 1.5,
                "nan": null,
                "participants": ["65b1f0c2a1b2c3d4e5f60719"],
                "privateMode": {"isActive": false, "participantId": "65b1f0c2a1b2c3d4e5f6071a"},
                "bin": {"$binary": {"base64": "", "subType": "00"}},
            })
        );
        let relaxed = json!({"a": {"$date": "2025-02-01T10:00:00.000Z"}, "b": {"$date": "2025-02-01T11:00:00.000+0100"}, "c": {"$date": 0}});
        assert_eq!(
            plain(relaxed),
            json!({"a": "2025-02-01T10:00:00.000Z", "b": "2025-02-01T10:00:00.000Z", "c": "1970-01-01T00:00:00.000Z"})
        );
    }

    #[test]
    fn lines_with_a_broken_one() {
        let text = "{\"a\":1}\n\n{\"a\": 2\n[1]\r\n{\"a\":{\"$numberInt\":\"3\"}}\n";
        let p = read(text);
        let got: Vec<_> = p
            .docs
            .iter()
            .map(|d| (d.line, d.doc["a"].clone()))
            .collect();
        assert_eq!(got, vec![(1, json!(1)), (5, json!(3))]);
        let bad: Vec<_> = p.malformed.iter().map(|m| m.line).collect();
        assert_eq!(bad, vec![3, 4]);
        assert!(
            p.malformed[0].reason.starts_with("not valid JSON"),
            "{:?}",
            p.malformed
        );
    }

    #[test]
    fn arrays_compact_and_pretty() {
        let compact = "[{\"a\":1},{\"a\":2}]";
        assert_eq!(read(compact).docs.len(), 2);
        let pretty = "\u{feff}[{\n\t\"a\": 1\n},\n{\n\t\"a\": \"}{\"\n}]\n";
        let p = read(pretty);
        let got: Vec<_> = p
            .docs
            .iter()
            .map(|d| (d.line, d.doc["a"].clone()))
            .collect();
        assert_eq!(got, vec![(1, json!(1)), (4, json!("}{"))]);
        assert!(p.malformed.is_empty());
        assert_eq!(read("[]").docs.len(), 0);
        assert!(read("[]").malformed.is_empty());
    }

    #[test]
    fn a_broken_array_element_is_skipped() {
        let text = "[{\"a\":1},\n{\"a\": tru},\n{\"a\":3},\n4]";
        let p = read(text);
        let got: Vec<_> = p
            .docs
            .iter()
            .map(|d| (d.line, d.doc["a"].clone()))
            .collect();
        assert_eq!(got, vec![(1, json!(1)), (3, json!(3))]);
        let bad: Vec<_> = p.malformed.iter().map(|m| m.line).collect();
        assert_eq!(bad, vec![2, 4]);
        let cut = read("[{\"a\":1},{\"a\":");
        assert_eq!(cut.docs.len(), 1);
        assert_eq!(cut.malformed.len(), 1);
    }
}
