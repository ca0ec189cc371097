//! Summaries of measured samples: percentiles by sorting, rates, medians.

use std::time::Duration;

/// The `p`-th percentile (0 < p <= 100) of `sorted` by the nearest-rank
/// method: the smallest sample with at least `p`% of the samples at or below
/// it. `None` when there are no samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).copied()
}

/// Median and tail of a set of latency samples.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
}

impl Latency {
    /// Sorts the samples and takes p50 and p99; `None` when there are none.
    pub fn from_samples(mut samples: Vec<Duration>) -> Option<Latency> {
        samples.sort_unstable();
        Some(Latency {
            p50: percentile(&samples, 50.0)?,
            p99: percentile(&samples, 99.0)?,
        })
    }
}

/// A number of events processed in a measured time.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub events: u64,
    pub elapsed: Duration,
}

impl Rate {
    /// Events per second.
    pub fn per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// The overall rate of several measurements: total events over total time.
    pub fn total(rates: &[Rate]) -> Rate {
        Rate {
            events: rates.iter().map(|r| r.events).sum(),
            elapsed: rates.iter().map(|r| r.elapsed).sum(),
        }
    }

    /// The measurement with the median rate (the lower middle one for an even
    /// count); `None` when there are none.
    pub fn median(rates: &[Rate]) -> Option<Rate> {
        let mut sorted = rates.to_vec();
        sorted.sort_by(|a, b| a.per_sec().total_cmp(&b.per_sec()));
        sorted.get(sorted.len().checked_sub(1)? / 2).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(values: impl IntoIterator<Item = u64>) -> Vec<Duration> {
        values.into_iter().map(Duration::from_micros).collect()
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let samples = micros(1..=100);
        assert_eq!(percentile(&samples, 50.0), Some(Duration::from_micros(50)));
        assert_eq!(percentile(&samples, 99.0), Some(Duration::from_micros(99)));
        assert_eq!(
            percentile(&samples, 100.0),
            Some(Duration::from_micros(100))
        );
        assert_eq!(percentile(&samples, 0.1), Some(Duration::from_micros(1)));
    }

    #[test]
    fn percentile_of_few_samples_is_a_sample() {
        assert_eq!(percentile(&[], 50.0), None);
        let one = micros([7]);
        assert_eq!(percentile(&one, 50.0), Some(Duration::from_micros(7)));
        assert_eq!(percentile(&one, 99.0), Some(Duration::from_micros(7)));
        let three = micros([1, 2, 30]);
        assert_eq!(percentile(&three, 50.0), Some(Duration::from_micros(2)));
        assert_eq!(percentile(&three, 99.0), Some(Duration::from_micros(30)));
    }

    #[test]
    fn latency_sorts_its_samples() {
        let latency = Latency::from_samples(micros([900, 5, 40, 10, 20])).expect("samples");
        assert_eq!(latency.p50, Duration::from_micros(20));
        assert_eq!(latency.p99, Duration::from_micros(900));
        assert!(Latency::from_samples(Vec::new()).is_none());
    }

    #[test]
    fn rates_total_and_median() {
        let rate = |events, ms| Rate {
            events,
            elapsed: Duration::from_millis(ms),
        };
        let rates = [rate(100, 1000), rate(300, 1000), rate(200, 1000)];
        assert_eq!(Rate::total(&rates).per_sec(), 200.0);
        assert_eq!(Rate::median(&rates).map(|r| r.events), Some(200));
        assert!(Rate::median(&[]).is_none());
    }
}
