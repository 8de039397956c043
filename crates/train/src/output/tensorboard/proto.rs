//! The `tensorflow.Event` protocol buffer messages a scalar log needs, as `prost` structs.
//!
//! Only the fields torchlet writes or reads are declared; `prost` skips every other field
//! when decoding, so files from other writers (images, histograms, graphs) still read.
//! Tags follow `tensorboard/compat/proto/event.proto` and `summary.proto`.

/// `tensorflow.Event`: one record of an event file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The global step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What the event holds.
    #[prost(oneof = "What", tags = "3, 5, 7")]
    pub what: Option<What>,
}

/// `Event.what`: the event's payload.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// The file's first event: `"brain.Event:2"`.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// Summaries, such as scalars.
    #[prost(message, tag = "5")]
    Summary(Summary),
    /// A session marker (`START` on a restart).
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `tensorflow.Summary`: a list of tagged values.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<Value>,
}

/// `tensorflow.Summary.Value`: one tagged value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    /// The tag, e.g. `"loss/train"`.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// A scalar (`simple_value`); other kinds are skipped.
    #[prost(oneof = "Kind", tags = "2")]
    pub kind: Option<Kind>,
}

/// `Summary.Value.value`: the kinds of value torchlet knows.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    /// A scalar.
    #[prost(float, tag = "2")]
    SimpleValue(f32),
}

/// `tensorflow.SessionLog`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionLog {
    /// `SessionLog.SessionStatus`; [`SESSION_START`] marks a restart.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `SessionLog.SessionStatus.START`.
pub const SESSION_START: i32 = 1;
