//! The Nagios plugin output format.
//!
//! ```text
//! DISK OK - free space: / 3326 MB (56%) | /=2643MB;5948;5958;0;5968
//! long output line 1
//! long output line 2 | 'inode usage'=12%;80;90;0;100
//! more perfdata on its own line
//! ```
//!
//! The first line's text before `|` is the output; after it come perfdata
//! items separated by spaces. Later lines are long output, until one holds
//! a `|`: everything after it, on that line and the following ones, is more
//! perfdata.

use vitalis_core::Perfdata;

/// A plugin's stdout, parsed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PluginOutput {
    /// The first line's text before `|`, trimmed.
    pub text: String,
    /// Further lines of human-readable output.
    pub long_text: Vec<String>,
    /// Every well-formed perfdata item, in order.
    pub perfdata: Vec<Perfdata>,
}

/// Parses a plugin's stdout.
pub fn parse_output(stdout: &str) -> PluginOutput {
    let mut lines = stdout.lines();
    let first = lines.next().unwrap_or("");
    let (text, mut perf) = match first.split_once('|') {
        Some((t, p)) => (t, p.to_string()),
        None => (first, String::new()),
    };
    let mut long_text = Vec::new();
    let mut in_perf = false;
    for line in lines {
        if in_perf {
            perf.push(' ');
            perf.push_str(line);
        } else if let Some((t, p)) = line.split_once('|') {
            if !t.trim().is_empty() {
                long_text.push(t.trim_end().to_string());
            }
            perf.push(' ');
            perf.push_str(p);
            in_perf = true;
        } else {
            long_text.push(line.trim_end().to_string());
        }
    }
    while long_text.last().is_some_and(|l| l.trim().is_empty()) {
        long_text.pop();
    }
    PluginOutput {
        text: text.trim().to_string(),
        long_text,
        perfdata: parse_perfdata(&perf),
    }
}

/// Parses perfdata items `'label'=value[UOM];warn;crit;min;max` separated
/// by whitespace. Labels may be quoted with `'` (and then hold spaces and
/// `=`; `''` is a literal quote). Items that are malformed, or whose value
/// is `U` (undetermined), are skipped.
pub fn parse_perfdata(text: &str) -> Vec<Perfdata> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (item, next) = one_item(rest);
        if let Some(p) = item {
            out.push(p);
        }
        rest = next.trim_start();
    }
    out
}

/// Parses one item at the start of `s`; returns it (if well-formed) and
/// what follows it.
fn one_item(s: &str) -> (Option<Perfdata>, &str) {
    let (label, after_label) = if let Some(quoted) = s.strip_prefix('\'') {
        // Quoted label: up to a quote that is not doubled.
        let mut label = String::new();
        let mut chars = quoted.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|&(_, n)| n) == Some('\'') {
                    label.push('\'');
                    chars.next();
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                label.push(c);
            }
        }
        match end {
            Some(e) => (label, &quoted[e..]),
            // Unterminated quote: nothing more can be trusted.
            None => return (None, ""),
        }
    } else {
        let stop = s
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(s.len());
        (s[..stop].to_string(), &s[stop..])
    };
    let Some(after_eq) = after_label.strip_prefix('=') else {
        // No `=`: skip this token.
        let skip = after_label
            .find(char::is_whitespace)
            .unwrap_or(after_label.len());
        return (None, &after_label[skip..]);
    };
    let end = after_eq.find(char::is_whitespace).unwrap_or(after_eq.len());
    let (spec, rest) = after_eq.split_at(end);
    (datum(label, spec), rest)
}

/// `value[UOM];warn;crit;min;max` for `label`.
fn datum(label: String, spec: &str) -> Option<Perfdata> {
    if label.is_empty() {
        return None;
    }
    let mut fields = spec.split(';');
    let value_uom = fields.next()?;
    let split = number_prefix(value_uom);
    let value = parse_number(&value_uom[..split])?;
    let unit = value_uom[split..].to_string();
    let mut field = || {
        fields
            .next()
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
    };
    let warn = field();
    let crit = field();
    let min = field().and_then(|f| parse_number(&f));
    let max = field().and_then(|f| parse_number(&f));
    Some(Perfdata {
        label,
        value,
        unit,
        warn,
        crit,
        min,
        max,
    })
}

/// The length of the number at the start of `s` (sign, digits, one decimal
/// point or comma, an exponent).
fn number_prefix(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.' || b[i] == b',') {
        i += 1;
    }
    // An exponent only when digits follow (`1e3`, `2.5E-4`), so that a unit
    // starting with `e` is not eaten.
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'-' || b[j] == b'+') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    i
}

/// A finite number; a decimal comma (some locales) counts as a point.
fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    let n = if s.contains(',') && !s.contains('.') {
        s.replace(',', ".").parse::<f64>().ok()
    } else {
        s.parse::<f64>().ok()
    };
    n.filter(|n| n.is_finite())
}

/// The unit for `observed_unit`: the SPEC's names where one fits, else the
/// plugin's own.
pub fn observed_unit(uom: &str) -> Option<String> {
    let unit = match uom {
        "" => return None,
        "%" => "percent",
        "B" => "bytes",
        "c" => "count",
        other => other,
    };
    Some(unit.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(label: &str, value: f64, unit: &str) -> Perfdata {
        Perfdata {
            label: label.into(),
            value,
            unit: unit.into(),
            warn: None,
            crit: None,
            min: None,
            max: None,
        }
    }

    #[test]
    fn full_item_with_thresholds() {
        let items = parse_perfdata("/=2643MB;5948;5958;0;5968");
        assert_eq!(
            items,
            vec![Perfdata {
                warn: Some("5948".into()),
                crit: Some("5958".into()),
                min: Some(0.0),
                max: Some(5968.0),
                ..p("/", 2643.0, "MB")
            }]
        );
    }

    #[test]
    fn quoted_labels_units_and_several_items() {
        let items = parse_perfdata(
            "time=0.000098s;;;0.000000;10.000000  'inode usage'=12%;80;90 'it''s'=3 x=-1.5e3 rate=5c bytes=10B",
        );
        let labels: Vec<_> = items.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(
            labels,
            ["time", "inode usage", "it's", "x", "rate", "bytes"]
        );
        assert_eq!(items[0].unit, "s");
        assert_eq!(items[0].warn, None);
        assert_eq!(items[0].min, Some(0.0));
        assert_eq!(items[0].max, Some(10.0));
        assert_eq!((items[1].value, items[1].unit.as_str()), (12.0, "%"));
        assert_eq!(items[1].crit.as_deref(), Some("90"));
        assert_eq!(items[3].value, -1500.0);
        assert_eq!(items[4].unit, "c");
    }

    #[test]
    fn ranges_stay_verbatim_and_junk_is_skipped() {
        let items = parse_perfdata("a=1;@10:20;~:30 b=U;1;2 junk c= 'open=4 d=2,5");
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].warn.as_deref(), Some("@10:20"));
        assert_eq!(items[0].crit.as_deref(), Some("~:30"));
        let items = parse_perfdata("d=2,5ms e=1e f=3exa");
        assert_eq!(items[0].value, 2.5);
        assert_eq!((items[1].value, items[1].unit.as_str()), (1.0, "e"));
        assert_eq!((items[2].value, items[2].unit.as_str()), (3.0, "exa"));
    }

    #[test]
    fn output_lines_and_long_output_perfdata() {
        let out = parse_output(
            "DISK OK - free space | /=2643MB;5948;5958;0;5968\nline 1\nline 2 | 'inode usage'=12%\nload=0.5\n",
        );
        assert_eq!(out.text, "DISK OK - free space");
        assert_eq!(out.long_text, ["line 1", "line 2"]);
        let labels: Vec<_> = out.perfdata.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(labels, ["/", "inode usage", "load"]);
        let plain = parse_output("OK: fine\n");
        assert_eq!(plain.text, "OK: fine");
        assert!(plain.perfdata.is_empty() && plain.long_text.is_empty());
        assert_eq!(parse_output(""), PluginOutput::default());
        assert_eq!(observed_unit("%").as_deref(), Some("percent"));
        assert_eq!(observed_unit("MB").as_deref(), Some("MB"));
        assert_eq!(observed_unit(""), None);
    }
}
