// SPDX-License-Identifier: GPL-2.0

//! `make bench` results: the record each measurement prints in the guest,
//! and the report built from them on the host (table, JSON, SVG plot).
//!
//! A record is one line, `# bench key=value ...`, so that it survives the
//! guest console next to KTAP and is trivial to parse:
//!
//! ```text
//! # bench case=first_touch config=fixed bar=67108864 aligned=1 children=0 faults=32 samples=812,790,...
//! ```

use std::collections::BTreeMap;
use std::fmt::Write;

/// One figure: a case, a configuration and its parameters, with every
/// repetition's time in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `first_touch`, `fork` or `revoke` (revoke has two phases:
    /// `revoke` is the zap, `refault` every child faulting back in).
    pub case: String,
    /// `fixed`, `stock` or `legacy`.
    pub config: String,
    /// BAR0 size in bytes.
    pub bar: u64,
    /// Whether the mapping was 2 MiB aligned (PMD entries possible).
    pub aligned: bool,
    /// Children holding the mapping (fork and revoke cases).
    pub children: u64,
    /// Faults of one repetition (ru_minflt; first_touch only, else 0).
    pub faults: u64,
    /// Extra `key=value` fields (variant counters), kept as they came.
    pub extra: BTreeMap<String, String>,
    /// Time of each repetition, ns.
    pub samples: Vec<u64>,
    /// Time of each repetition's second phase, ns (fork: the child's exit;
    /// revoke: every child faulted back in); empty for first_touch.
    pub then: Vec<u64>,
}

impl Record {
    /// The line the guest prints.
    pub fn line(&self) -> String {
        let mut s = format!(
            "# bench case={} config={} bar={} aligned={} children={} faults={}",
            self.case,
            self.config,
            self.bar,
            u8::from(self.aligned),
            self.children,
            self.faults
        );
        for (k, v) in &self.extra {
            let _ = write!(s, " {k}={v}");
        }
        let _ = write!(s, " samples={}", list(&self.samples));
        if !self.then.is_empty() {
            let _ = write!(s, " then={}", list(&self.then));
        }
        s
    }

    /// Parses a line printed by [`Record::line`]; `None` for other lines.
    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.trim().strip_prefix("# bench ")?;
        let mut r = Record {
            case: String::new(),
            config: String::new(),
            bar: 0,
            aligned: false,
            children: 0,
            faults: 0,
            extra: BTreeMap::new(),
            samples: Vec::new(),
            then: Vec::new(),
        };
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "case" => r.case = v.to_string(),
                "config" => r.config = v.to_string(),
                "bar" => r.bar = v.parse().ok()?,
                "aligned" => r.aligned = v == "1",
                "children" => r.children = v.parse().ok()?,
                "faults" => r.faults = v.parse().ok()?,
                "samples" => r.samples = parse_list(v)?,
                "then" => r.then = parse_list(v)?,
                _ => {
                    r.extra.insert(k.to_string(), v.to_string());
                }
            }
        }
        (!r.case.is_empty() && !r.samples.is_empty()).then_some(r)
    }

    /// (median, min, max) of the samples.
    pub fn stats(&self) -> (u64, u64, u64) {
        stats(&self.samples)
    }

    /// The name of the second phase in JSON, if the case has one.
    fn then_name(&self) -> Option<&'static str> {
        match self.case.as_str() {
            "fork" => Some("exit"),
            "revoke" => Some("refault"),
            _ => None,
        }
    }

    /// What makes two records of different configurations comparable.
    fn key(&self) -> (String, u64, bool, u64) {
        (self.case.clone(), self.bar, self.aligned, self.children)
    }
}

fn list(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn parse_list(v: &str) -> Option<Vec<u64>> {
    v.split(',').map(str::parse).collect::<Result<_, _>>().ok()
}

/// (median, min, max) of a non-empty list.
fn stats(v: &[u64]) -> (u64, u64, u64) {
    let mut s = v.to_vec();
    s.sort_unstable();
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2
    };
    (median, s[0], s[n - 1])
}

/// Merges the records of one figure (same case, configuration and
/// parameters, measured in several passes) into one, samples concatenated,
/// in first-seen order.
pub fn merge(records: Vec<Record>) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    for r in records {
        match out
            .iter_mut()
            .find(|o| o.config == r.config && o.key() == r.key())
        {
            Some(o) => {
                o.samples.extend(r.samples);
                o.then.extend(r.then);
                o.faults = r.faults;
                o.extra.extend(r.extra);
            }
            None => out.push(r),
        }
    }
    out
}

/// `fixed / stock` median ratios, one per figure both configurations have.
pub fn ratios(records: &[Record]) -> Vec<((String, u64, bool, u64), f64)> {
    let mut out = Vec::new();
    for f in records.iter().filter(|r| r.config == "fixed") {
        if let Some(s) = records
            .iter()
            .find(|r| r.config == "stock" && r.key() == f.key())
        {
            let (fm, _, _) = f.stats();
            let (sm, _, _) = s.stats();
            if sm > 0 {
                out.push((f.key(), fm as f64 / sm as f64));
            }
        }
    }
    out
}

/// Human size: `2 MiB`, `1 GiB`.
pub fn size(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

fn ms(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1e6)
}

/// The table for stdout: one row per figure. `then ms` is the second
/// phase's median (fork: the child's exit; revoke: every child faulted
/// back in); `entries` the variant's PTE/PMD inserts of one first touch.
pub fn table(records: &[Record]) -> String {
    let mut t = format!(
        "{:<11} {:<6} {:>7} {:<7} {:>4} {:>10} {:>10} {:>10} {:>10} {:>7} {:>13}  {}\n",
        "case",
        "config",
        "BAR",
        "mapping",
        "kids",
        "median ms",
        "min ms",
        "max ms",
        "then ms",
        "faults",
        "ptes/pmds",
        "fixed/stock"
    );
    let ratios = ratios(records);
    for r in records {
        let (med, min, max) = r.stats();
        let ratio = if r.config == "fixed" {
            ratios
                .iter()
                .find(|(k, _)| *k == r.key())
                .map_or(String::new(), |(_, x)| format!("{x:.2}x"))
        } else {
            String::new()
        };
        let then = if r.then.is_empty() {
            String::new()
        } else {
            ms(stats(&r.then).0)
        };
        let entries = match (r.extra.get("ptes"), r.extra.get("pmds")) {
            (Some(p), Some(m)) => format!("{p}/{m}"),
            _ => String::new(),
        };
        let _ = writeln!(
            t,
            "{:<11} {:<6} {:>7} {:<7} {:>4} {:>10} {:>10} {:>10} {:>10} {:>7} {:>13}  {}",
            r.case,
            r.config,
            size(r.bar),
            if r.aligned { "aligned" } else { "4K-only" },
            r.children,
            ms(med),
            ms(min),
            ms(max),
            then,
            if r.case == "first_touch" {
                r.faults.to_string()
            } else {
                String::new()
            },
            entries,
            ratio
        );
    }
    t
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `build/bench.json` (schema `vfio-revoke-bench/1`).
pub fn json(records: &[Record], kernel: &str, accel: &str, repeats: usize) -> String {
    let mut j = format!(
        "{{\"schema\": \"vfio-revoke-bench/1\", \"kernel\": {}, \"accel\": {}, \"repeats\": {repeats},\n \"results\": [",
        json_str(kernel),
        json_str(accel)
    );
    for (i, r) in records.iter().enumerate() {
        let (med, min, max) = r.stats();
        let _ = write!(
            j,
            "{}\n  {{\"case\": {}, \"config\": {}, \"bar_bytes\": {}, \"aligned\": {}, \"children\": {}, \
             \"median_ns\": {med}, \"min_ns\": {min}, \"max_ns\": {max}, \"faults\": {}",
            if i > 0 { "," } else { "" },
            json_str(&r.case),
            json_str(&r.config),
            r.bar,
            r.aligned,
            r.children,
            r.faults
        );
        if let (Some(name), false) = (r.then_name(), r.then.is_empty()) {
            let (m, lo, hi) = stats(&r.then);
            let _ = write!(
                j,
                ", \"{name}_median_ns\": {m}, \"{name}_min_ns\": {lo}, \"{name}_max_ns\": {hi}"
            );
        }
        for (k, v) in &r.extra {
            match v.parse::<u64>() {
                Ok(n) => {
                    let _ = write!(j, ", {}: {n}", json_str(k));
                }
                Err(_) => {
                    let _ = write!(j, ", {}: {}", json_str(k), json_str(v));
                }
            }
        }
        j.push('}');
    }
    j.push_str("\n ],\n \"ratios\": [");
    for (i, ((case, bar, aligned, children), x)) in ratios(records).iter().enumerate() {
        let _ = write!(
            j,
            "{}\n  {{\"case\": {}, \"bar_bytes\": {bar}, \"aligned\": {aligned}, \"children\": {children}, \"fixed_over_stock\": {x:.4}}}",
            if i > 0 { "," } else { "" },
            json_str(case),
        );
    }
    j.push_str("\n ]}\n");
    j
}

/// `build/bench.svg`: first-touch median time against BAR size, log-log,
/// one line per configuration and mapping, with the fault count at each
/// point.
pub fn svg(records: &[Record], title: &str) -> String {
    let (w, h, left, right, top, bottom) = (880.0, 460.0, 80.0, 270.0, 40.0, 50.0);
    let pts: Vec<&Record> = records.iter().filter(|r| r.case == "first_touch").collect();
    let mut s = format!(
        "<!-- SPDX-License-Identifier: GPL-2.0 -->\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n",
        (w - right + left) / 2.0,
        xml(title)
    );
    if pts.is_empty() {
        s.push_str("<text x=\"100\" y=\"100\">no first_touch results</text>\n</svg>\n");
        return s;
    }
    let lg = |v: f64| v.max(1.0).log10();
    let (bmin, bmax) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), r| {
        (a.min(lg(r.bar as f64)), b.max(lg(r.bar as f64)))
    });
    let (tmin, tmax) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), r| {
        let m = lg(r.stats().0 as f64 / 1e3);
        (a.min(m), b.max(m))
    });
    let (tmin, tmax) = (tmin.floor(), tmax.ceil().max(tmin.floor() + 1.0));
    let (bspan, tspan) = ((bmax - bmin).max(1e-9), tmax - tmin);
    let x = |b: f64| left + (lg(b) - bmin) / bspan * (w - left - right);
    let y = |us: f64| h - bottom - (lg(us) - tmin) / tspan * (h - top - bottom);
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>",
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    let mut decade = tmin;
    while decade <= tmax {
        let yy = h - bottom - (decade - tmin) / tspan * (h - top - bottom);
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{yy}\" x2=\"{}\" y2=\"{yy}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            w - right,
            left - 6.0,
            yy + 4.0,
            xml(&label_us(10f64.powf(decade)))
        );
        decade += 1.0;
    }
    let mut bars: Vec<u64> = pts.iter().map(|r| r.bar).collect();
    bars.sort_unstable();
    bars.dedup();
    for b in &bars {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(*b as f64),
            h - bottom + 18.0,
            size(*b)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">BAR0 size (mapped whole, every page touched)</text>\n\
         <text x=\"18\" y=\"{}\" transform=\"rotate(-90 18 {})\" text-anchor=\"middle\">first touch, median (log)</text>",
        (w - right + left) / 2.0,
        h - 12.0,
        (h - bottom + top) / 2.0,
        (h - bottom + top) / 2.0
    );
    let colors = [
        ("fixed", "#1b7837"),
        ("stock", "#2166ac"),
        ("legacy", "#b2182b"),
    ];
    let mut legend = top;
    for (config, color) in colors {
        for aligned in [true, false] {
            let mut line: Vec<&Record> = pts
                .iter()
                .copied()
                .filter(|r| r.config == config && r.aligned == aligned)
                .collect();
            if line.is_empty() {
                continue;
            }
            line.sort_by_key(|r| r.bar);
            let dash = if aligned {
                ""
            } else {
                " stroke-dasharray=\"6 4\""
            };
            let path: Vec<String> = line
                .iter()
                .map(|r| format!("{:.1},{:.1}", x(r.bar as f64), y(r.stats().0 as f64 / 1e3)))
                .collect();
            let _ = writeln!(
                s,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>",
                path.join(" ")
            );
            for r in &line {
                let (px, py) = (x(r.bar as f64), y(r.stats().0 as f64 / 1e3));
                let _ = writeln!(
                    s,
                    "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3\" fill=\"{color}\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{color}\">{}f</text>",
                    px + 5.0,
                    py - 5.0,
                    r.faults
                );
            }
            let _ = writeln!(
                s,
                "<line x1=\"{}\" y1=\"{legend}\" x2=\"{}\" y2=\"{legend}\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>\
                 <text x=\"{}\" y=\"{}\">{config}, {}</text>",
                w - right + 60.0,
                w - right + 88.0,
                w - right + 94.0,
                legend + 4.0,
                if aligned { "2 MiB aligned" } else { "4 KiB entries only" }
            );
            legend += 20.0;
        }
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"10\">Nf = faults per first touch</text>",
        w - right + 60.0,
        legend + 10.0
    );
    s.push_str("</svg>\n");
    s
}

fn label_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{} ms", us / 1e3)
    } else {
        format!("{us} µs")
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(config: &str, samples: &[u64]) -> Record {
        Record {
            case: "first_touch".into(),
            config: config.into(),
            bar: 64 << 20,
            aligned: true,
            children: 0,
            faults: 32,
            extra: BTreeMap::from([("pmds".to_string(), "32".to_string())]),
            samples: samples.to_vec(),
            then: Vec::new(),
        }
    }

    #[test]
    fn line_round_trips() {
        let r = rec("fixed", &[5, 1, 9]);
        assert_eq!(Record::parse(&r.line()), Some(r.clone()));
        assert_eq!(Record::parse("ok 1 foo"), None);
        assert_eq!(r.stats(), (5, 1, 9));
        assert_eq!(rec("x", &[1, 2, 3, 10]).stats(), (2, 1, 10));
    }

    #[test]
    fn passes_merge_and_then_round_trips() {
        let mut a = rec("fixed", &[1, 2]);
        a.case = "fork".into();
        a.then = vec![7, 9];
        assert_eq!(Record::parse(&a.line()), Some(a.clone()));
        let mut b = a.clone();
        b.samples = vec![3];
        b.then = vec![8];
        let m = merge(vec![a, rec("stock", &[4]), b]);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].samples, vec![1, 2, 3]);
        assert_eq!(stats(&m[0].then), (8, 7, 9));
        assert!(json(&m, "k", "tcg", 3).contains("\"exit_median_ns\": 8"));
    }

    #[test]
    fn ratio_json_and_svg() {
        let rs = vec![rec("fixed", &[10, 10, 10]), rec("stock", &[20, 20, 20])];
        let r = ratios(&rs);
        assert_eq!(r.len(), 1);
        assert!((r[0].1 - 0.5).abs() < 1e-9);
        let j = json(&rs, "7.3.4", "tcg", 3);
        assert!(j.contains("\"schema\": \"vfio-revoke-bench/1\""));
        assert!(j.contains("\"fixed_over_stock\": 0.5000"));
        assert!(j.contains("\"median_ns\": 10"));
        assert!(j.contains("\"pmds\": 32"));
        assert!(svg(&rs, "t").contains("<polyline"));
        assert!(table(&rs).contains("0.50x"));
    }
}
