//! TensorBoard event files: a scalar per metric per epoch, in the format TensorBoard reads
//! (TFRecord framing around `tensorflow.Event` protocol buffers), so `tensorboard --logdir`
//! shows minivgg's curves beside Keras' and PyTorch's.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// `tensorflow.Event`, the fields a scalar summary uses.
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` holding a `simple_value`.
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
}

/// One event file, appended to record by record.
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

/// Writers made by this process, so two in one second get two files.
static WRITERS: AtomicUsize = AtomicUsize::new(0);

impl EventWriter {
    /// A new event file in `dir` (created if missing), named as TensorBoard's own are:
    /// `events.out.tfevents.SECONDS.HOST.PID.N`.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        std::fs::create_dir_all(dir).with_context(|| {
            format!("cannot create the TensorBoard directory {}", dir.display())
        })?;
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty() && !h.contains(['/', '\\']))
            .unwrap_or_else(|| "minivgg".into());
        let name = format!(
            "events.out.tfevents.{}.{host}.{}.{}",
            now().as_secs(),
            std::process::id(),
            WRITERS.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut writer = EventWriter { file, path };
        writer.append(&Event {
            wall_time: now().as_secs_f64(),
            step: 0,
            file_version: Some("brain.Event:2".into()),
            summary: None,
        })?;
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An event per `(tag, value)` at `step`, written straight to the file (no buffer), so
    /// TensorBoard sees the step now.
    pub fn write_scalars<'a>(
        &mut self,
        step: u64,
        scalars: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> Result<()> {
        let wall_time = now().as_secs_f64();
        for (tag, value) in scalars {
            self.append(&Event {
                wall_time,
                step: step as i64,
                file_version: None,
                summary: Some(Summary {
                    value: vec![SummaryValue {
                        tag: tag.to_string(),
                        simple_value: Some(value as f32),
                    }],
                }),
            })?;
        }
        Ok(())
    }

    /// One TFRecord: the length, its masked CRC, the event, its masked CRC.
    fn append(&mut self, event: &Event) -> Result<()> {
        let data = prost::Message::encode_to_vec(event);
        let len = (data.len() as u64).to_le_bytes();
        let mut record = Vec::with_capacity(data.len() + 16);
        record.extend_from_slice(&len);
        record.extend_from_slice(&masked_crc(&len).to_le_bytes());
        record.extend_from_slice(&data);
        record.extend_from_slice(&masked_crc(&data).to_le_bytes());
        self.file
            .write_all(&record)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

fn now() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// TFRecord's CRC: CRC-32C, rotated and offset so that a CRC of data holding CRCs stays strong.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_framed_as_tfrecord_with_masked_crc32c() {
        // CRC-32C of "123456789" is 0xE3069283 (the standard check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(
            masked_crc(b"123456789"),
            0xE306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8)
        );
        let dir = tempfile::tempdir().unwrap();
        let mut writer = EventWriter::create(dir.path()).unwrap();
        writer.write_scalars(3, [("loss", 0.5)]).unwrap();
        let bytes = std::fs::read(writer.path()).unwrap();
        let mut records = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            assert_eq!(crc, masked_crc(&bytes[at..at + 8]));
            let data = &bytes[at + 12..at + 12 + len];
            let crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
            assert_eq!(crc, masked_crc(data));
            records.push(<Event as prost::Message>::decode(data).unwrap());
            at += 16 + len;
        }
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].file_version.as_deref(), Some("brain.Event:2"));
        assert_eq!(records[1].step, 3);
        let value = &records[1].summary.as_ref().unwrap().value[0];
        assert_eq!(
            (value.tag.as_str(), value.simple_value),
            ("loss", Some(0.5))
        );
    }
}
