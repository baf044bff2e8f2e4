//! Samples and their medians.

use std::time::Duration;

/// Time taken by one run (or by several runs added up).
#[derive(Clone, Copy, Default)]
pub(crate) struct Sample {
    pub(crate) wall: Duration,
    pub(crate) cpu: Duration,
}

impl Sample {
    /// Two operations run one after the other: their times add up.
    pub(crate) fn then(self, next: Sample) -> Sample {
        Sample { wall: self.wall + next.wall, cpu: self.cpu + next.cpu }
    }
}

/// The medians of N samples.
pub(crate) struct Medians {
    pub(crate) wall_ms: f64,
    pub(crate) cpu_ms: f64,
    pub(crate) max_rss_mib: f64,
}

impl Medians {
    /// From the timed samples and the peak RSS (KiB) of the runs under `time`.
    pub(crate) fn of(samples: &[Sample], rss_kib: &[u64]) -> Medians {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Medians {
            wall_ms: median(samples.iter().map(|s| ms(s.wall)).collect()),
            cpu_ms: median(samples.iter().map(|s| ms(s.cpu)).collect()),
            max_rss_mib: median(rss_kib.iter().map(|&kib| kib as f64 / 1024.0).collect()),
        }
    }
}

/// The samples of one cell of the table.
#[derive(Default)]
pub(crate) struct Cell {
    pub(crate) samples: Vec<Sample>,
    pub(crate) rss_kib: Vec<u64>,
}

impl Cell {
    pub(crate) fn push(&mut self, (sample, rss_kib): (Sample, u64)) {
        self.samples.push(sample);
        self.rss_kib.push(rss_kib);
    }

    pub(crate) fn medians(&self) -> Medians {
        Medians::of(&self.samples, &self.rss_kib)
    }
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
