//! Zero-copy decoding: sensor readings whose strings borrow from the stored payload,
//! summarised by a projection that allocates nothing per event.

use std::convert::Infallible;

use esrc::{Context, Project};
use serde::{Deserialize, Serialize};

/// A sensor's event. `sensor` and `unit` borrow from the payload: decoding them copies
/// nothing (serde borrows `&str` fields when the JSON string has no escapes).
#[derive(Debug, PartialEq, Serialize, Deserialize, esrc::Event)]
#[esrc(name = "Sensor")]
pub enum SensorEvent<'a> {
    /// A measurement.
    Measured {
        /// Which sensor.
        sensor: &'a str,
        /// The unit of `value`.
        unit: &'a str,
        /// The value.
        value: f64,
    },
    /// The sensor was recalibrated.
    Calibrated {
        /// Which sensor.
        sensor: &'a str,
    },
}

/// What is known about one sensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// The sensor's name.
    pub sensor: &'static str,
    /// How many readings.
    pub readings: u64,
    /// The highest reading.
    pub max: f64,
    /// The sum of the readings.
    pub sum: f64,
    /// How often it was recalibrated.
    pub calibrations: u64,
}

/// Per-sensor statistics over a fixed set of sensors, updated in place: projecting an
/// event allocates nothing.
#[derive(Clone, Debug)]
pub struct Summary {
    /// One entry per known sensor.
    pub sensors: Vec<Stats>,
    /// Readings from sensors not in the list.
    pub unknown: u64,
    /// How many payload bytes the decoded strings point into, instead of copies.
    pub borrowed_bytes: u64,
}

impl Summary {
    /// A summary for these sensors.
    pub fn new(sensors: &[&'static str]) -> Self {
        Self {
            sensors: sensors
                .iter()
                .map(|sensor| Stats {
                    sensor,
                    readings: 0,
                    max: f64::MIN,
                    sum: 0.0,
                    calibrations: 0,
                })
                .collect(),
            unknown: 0,
            borrowed_bytes: 0,
        }
    }

    fn stats(&mut self, sensor: &str) -> Option<&mut Stats> {
        self.sensors.iter_mut().find(|stats| stats.sensor == sensor)
    }
}

impl Project for Summary {
    type EventGroup<'de> = SensorEvent<'de>;
    type Error = Infallible;

    async fn project<'de>(
        &mut self,
        context: Context<'de, SensorEvent<'de>>,
    ) -> Result<(), Infallible> {
        let payload = context.envelope().payload.as_ptr_range();
        match context.event() {
            SensorEvent::Measured {
                sensor,
                unit,
                value,
            } => {
                for text in [sensor, unit] {
                    if payload.contains(&text.as_ptr()) {
                        self.borrowed_bytes += text.len() as u64;
                    }
                }
                match self.stats(sensor) {
                    Some(stats) => {
                        stats.readings += 1;
                        stats.sum += value;
                        stats.max = stats.max.max(*value);
                    }
                    None => self.unknown += 1,
                }
            }
            SensorEvent::Calibrated { sensor } => {
                if let Some(stats) = self.stats(sensor) {
                    stats.calibrations += 1;
                }
            }
        }
        Ok(())
    }
}
