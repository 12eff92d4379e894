//! Metrics computed at scrape time, written in the OpenMetrics text format
//! by `prometheus-client` (the Prometheus project's crate).
//!
//! Lifeboat's series are read from state that outlives the process (the job
//! store, the vaults, a replication rule's status), never counted in memory,
//! so a scrape builds a [`Scrape`] of metric families, each a list of label
//! sets with their values, and `prometheus-client` encodes it as a
//! [`Collector`]. Shared by the server's `/metrics` and a replication rule's
//! metrics (`lifeboat replicate --metrics-listen`, `status --prometheus`).
//!
//! Label values are escaped here (`\`, `"`, newline): `prometheus-client`
//! writes them as they are.

use std::fmt::Write;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, LabelSetEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The content type of [`Scrape::text`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The label set of one sample: names with their values.
#[derive(Debug, Clone)]
pub struct Labels(Vec<(&'static str, String)>);

impl Labels {
    /// A label set of these pairs, in this order.
    pub fn of(pairs: &[(&'static str, &str)]) -> Labels {
        Labels(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
    }
}

/// A label value, escaped (`\`, `"`, newline) as the text format wants.
fn escaped(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl EncodeLabelSet for Labels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        for (k, v) in &self.0 {
            let mut label = encoder.encode_label();
            let mut key = label.encode_label_key()?;
            key.write_str(k)?;
            let mut value = key.encode_label_value()?;
            value.write_str(&escaped(v))?;
            value.finish()?;
        }
        Ok(())
    }
}

/// A histogram read from somewhere else: its buckets' upper bounds with the
/// number of observations at most each (cumulative), their count and sum.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// (upper bound, observations in this bucket alone), `+Inf` last.
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum: f64,
}

impl Histogram {
    /// A histogram of cumulative bucket counts (`cumulative[i]` observations
    /// at most `bounds[i]`), `count` observations in all, summing to `sum`.
    pub fn from_cumulative(bounds: &[f64], cumulative: &[u64], count: u64, sum: f64) -> Histogram {
        let mut below = 0;
        let mut buckets = Vec::with_capacity(bounds.len() + 1);
        for (b, n) in bounds.iter().zip(cumulative) {
            buckets.push((*b, n.saturating_sub(below)));
            below = below.max(*n);
        }
        // `prometheus-client` writes f64::MAX as `+Inf`.
        buckets.push((f64::MAX, count.saturating_sub(below)));
        Histogram {
            buckets,
            count,
            sum,
        }
    }
}

/// The value of one sample.
#[derive(Debug, Clone)]
pub enum Value {
    /// A number with a fraction (seconds, ages).
    Float(f64),
    /// A whole number (counts, bytes, 0/1 flags), written without a fraction.
    Whole(u64),
    /// A histogram's buckets, count and sum.
    Histogram(Histogram),
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Whole(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Whole(v as u64)
    }
}

impl From<Histogram> for Value {
    fn from(v: Histogram) -> Value {
        Value::Histogram(v)
    }
}

/// One metric family: its name, help, type and samples.
#[derive(Debug)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: Vec<(Labels, Value)>,
}

impl Family {
    /// Adds a sample with these labels.
    pub fn sample(&mut self, labels: &[(&'static str, &str)], v: impl Into<Value>) -> &mut Self {
        self.samples.push((Labels::of(labels), v.into()));
        self
    }

    /// Writes the family's samples below its descriptor.
    fn encode_samples(&self, mut metric: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, value) in &self.samples {
            let mut m = metric.encode_family(labels)?;
            match (value, self.kind) {
                (Value::Whole(n), MetricType::Counter) => {
                    m.encode_counter::<NoLabelSet, _, u64>(n, None)?
                }
                (Value::Float(v), MetricType::Counter) => {
                    m.encode_counter::<NoLabelSet, _, f64>(v, None)?
                }
                (Value::Whole(n), _) => m.encode_gauge(n)?,
                (Value::Float(v), _) => m.encode_gauge(v)?,
                (Value::Histogram(h), _) => {
                    m.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?
                }
            }
        }
        Ok(())
    }
}

/// The metric families of one scrape, in the order they were added.
#[derive(Debug, Default)]
pub struct Scrape {
    families: Vec<Family>,
}

impl Scrape {
    /// A new, empty scrape.
    pub fn new() -> Scrape {
        Scrape::default()
    }

    /// Adds a family of type `kind` and returns it for its samples.
    fn family(&mut self, name: &'static str, help: &'static str, kind: MetricType) -> &mut Family {
        self.families.push(Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        });
        self.families.last_mut().expect("just pushed")
    }

    /// Adds a gauge family.
    pub fn gauge(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.family(name, help, MetricType::Gauge)
    }

    /// Adds a counter family, named as its samples are (`…_total`): the
    /// family itself is named without the suffix, as OpenMetrics wants.
    pub fn counter(&mut self, sample_name: &'static str, help: &'static str) -> &mut Family {
        let name = sample_name
            .strip_suffix("_total")
            .expect("a counter's samples are named …_total");
        self.family(name, help, MetricType::Counter)
    }

    /// Adds a histogram family (samples `…_bucket`, `…_sum`, `…_count`).
    pub fn histogram(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.family(name, help, MetricType::Histogram)
    }

    /// The OpenMetrics text of every family, `# EOF` last.
    pub fn text(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing into a String does not fail");
        out
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            let metric = encoder.encode_descriptor(f.name, f.help, None, f.kind)?;
            f.encode_samples(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_in_openmetrics_text() {
        let mut s = Scrape::new();
        s.counter("x_jobs_total", "Jobs.")
            .sample(&[("resource", "a\"b\\c\nd")], 3u64);
        s.gauge("x_age_seconds", "Age.")
            .sample(&[("r", "a")], 1.5)
            .sample(&[("r", "b")], true);
        s.histogram("x_duration_seconds", "Durations.").sample(
            &[("r", "a")],
            Histogram::from_cumulative(&[1.0, 5.0], &[1, 3], 4, 20.5),
        );
        s.gauge("x_empty", "Nothing yet.");
        assert_eq!(
            s.text(),
            "# HELP x_jobs Jobs.\n# TYPE x_jobs counter\n\
             x_jobs_total{resource=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP x_age_seconds Age.\n# TYPE x_age_seconds gauge\n\
             x_age_seconds{r=\"a\"} 1.5\nx_age_seconds{r=\"b\"} 1\n\
             # HELP x_duration_seconds Durations.\n# TYPE x_duration_seconds histogram\n\
             x_duration_seconds_sum{r=\"a\"} 20.5\nx_duration_seconds_count{r=\"a\"} 4\n\
             x_duration_seconds_bucket{le=\"1.0\",r=\"a\"} 1\n\
             x_duration_seconds_bucket{le=\"5.0\",r=\"a\"} 3\n\
             x_duration_seconds_bucket{le=\"+Inf\",r=\"a\"} 4\n\
             # HELP x_empty Nothing yet.\n# TYPE x_empty gauge\n\
             # EOF\n"
        );
    }
}
