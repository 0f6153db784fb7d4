//! What the soak prints: a line per sample while it runs, and the RSS figures of the summary.

/// One reading, every `--sample-every` seconds.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub seconds: f64,
    pub rss_mib: f64,
    pub fds: usize,
    pub published: u64,
    pub deliveries: u64,
    pub lost: u64,
    pub slow_started: u64,
    pub slow_dropped: u64,
    pub hostile_connections: u64,
}

pub const HEADER: &str =
    "elapsed   RSS MiB   fds   published   deliveries   lost   slow dropped   hostile conns";

impl Sample {
    pub fn line(&self) -> String {
        format!(
            "{:>6.0}s {:>9.1} {:>5} {:>11} {:>12} {:>6} {:>9}/{:<4} {:>15}",
            self.seconds,
            self.rss_mib,
            self.fds,
            self.published,
            self.deliveries,
            self.lost,
            self.slow_dropped,
            self.slow_started,
            self.hostile_connections
        )
    }
}

/// RSS over the run.
#[derive(Debug, PartialEq)]
pub struct Memory {
    pub min: f64,
    pub max: f64,
    pub last: f64,
    /// Least-squares slope of RSS over the samples of the run's second half, in MiB per 10 min;
    /// `None` with fewer than three such samples.
    pub slope_per_10_min: Option<f64>,
}

pub fn memory(samples: &[Sample]) -> Option<Memory> {
    let last = samples.last()?;
    let rss = samples.iter().map(|sample| sample.rss_mib);
    let half = last.seconds / 2.0;
    let second_half: Vec<(f64, f64)> = samples
        .iter()
        .filter(|sample| sample.seconds >= half)
        .map(|sample| (sample.seconds, sample.rss_mib))
        .collect();
    Some(Memory {
        min: rss.clone().fold(f64::INFINITY, f64::min),
        max: rss.fold(f64::NEG_INFINITY, f64::max),
        last: last.rss_mib,
        slope_per_10_min: slope(&second_half).map(|per_second| per_second * 600.0),
    })
}

/// The least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    (variance > 0.0).then(|| covariance / variance)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seconds: f64, rss_mib: f64) -> Sample {
        Sample {
            seconds,
            rss_mib,
            fds: 0,
            published: 0,
            deliveries: 0,
            lost: 0,
            slow_started: 0,
            slow_dropped: 0,
            hostile_connections: 0,
        }
    }

    #[test]
    fn the_slope_is_taken_over_the_second_half_only() {
        // Warm-up growth in the first half, then +1 MiB per minute.
        let samples: Vec<Sample> = (0..=10)
            .map(|minute| {
                let rss = if minute < 5 {
                    10.0 * minute as f64
                } else {
                    40.0 + minute as f64
                };
                sample(minute as f64 * 60.0, rss)
            })
            .collect();
        let memory = memory(&samples).unwrap();
        assert_eq!((memory.min, memory.max, memory.last), (0.0, 50.0, 50.0));
        let slope = memory.slope_per_10_min.unwrap();
        assert!((slope - 10.0).abs() < 1e-9, "{slope}");
        assert_eq!(self::memory(&samples[..2]).unwrap().slope_per_10_min, None);
    }
}
