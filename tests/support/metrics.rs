//! Reading one sample out of the Prometheus text that `/metrics` answers.

/// The value of the sample written exactly as `series` (name and labels) in `metrics`.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample `{series}` in:\n{metrics}"))
        .parse()
        .unwrap()
}
