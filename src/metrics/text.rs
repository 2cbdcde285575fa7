//! The Prometheus text exposition format (version 0.0.4), written by hand.
//!
//! Scrapes are rare next to statements, so this side may allocate freely; what it must get
//! right is the format: one `# HELP` and `# TYPE` per family, label values escaped, histogram
//! buckets cumulative with a final `+Inf` bucket, `_sum` and `_count`.

use std::fmt::Write;

use super::primitives::HistogramSnapshot;

/// The Content-Type of a scrape answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a metric family: every sample of `name` follows before the next family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", format_value(value));
        self
    }

    /// A histogram family's samples: `_bucket`s, `_sum`, `_count`.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        snapshot: &HistogramSnapshot,
    ) -> &mut Self {
        for &(bound, count) in &snapshot.buckets {
            let _ = write!(self.out, "{name}_bucket");
            write_labels(&mut self.out, labels, Some(&format_value(bound)));
            let _ = writeln!(self.out, " {count}");
        }
        let _ = write!(self.out, "{name}_bucket");
        write_labels(&mut self.out, labels, Some("+Inf"));
        let _ = writeln!(self.out, " {}", snapshot.count);
        let _ = write!(self.out, "{name}_sum");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", format_value(snapshot.sum_seconds));
        let _ = write!(self.out, "{name}_count");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", snapshot.count);
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

/// Integers without a fraction, others in Rust's shortest round-trip form.
fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_histograms_follow_the_format() {
        let mut text = Exposition::default();
        text.family("t_total", "counter", "Things.").sample(
            "t_total",
            &[("kind", "a\"b\\c\nd")],
            3.0,
        );
        text.family("t_seconds", "histogram", "Time.").histogram(
            "t_seconds",
            &[],
            &HistogramSnapshot {
                buckets: vec![(0.005, 1), (1.0, 2)],
                count: 3,
                sum_seconds: 2.5,
            },
        );
        assert_eq!(
            text.finish(),
            "# HELP t_total Things.\n# TYPE t_total counter\nt_total{kind=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP t_seconds Time.\n# TYPE t_seconds histogram\n\
             t_seconds_bucket{le=\"0.005\"} 1\nt_seconds_bucket{le=\"1\"} 2\n\
             t_seconds_bucket{le=\"+Inf\"} 3\nt_seconds_sum 2.5\nt_seconds_count 3\n"
        );
    }
}
