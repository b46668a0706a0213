//! Decoding of API responses, leniently: a watch stream line by line, and a list response item
//! by item. A watch line is decoded in one pass into its slim view ([`crate::objects`]); a list
//! item is parsed into a [`serde_json::Value`] first, then into its view. An object that does
//! not decode (wrong types in a field the watcher reads, no name, another kind) is reported as
//! [`Malformed`] with whatever identity is readable, so the caller can log it, count it and go
//! on.
//!
//! List responses are decoded item by item as they stream in: [`ListDecoder`] is pushed the
//! body chunk by chunk (or [`for_each_list_item_streamed`] reads it from an
//! [`AsyncRead`](futures::AsyncRead)), walks the top-level object with a byte-level state
//! machine, and hands each element of `items` to a callback as soon as its last byte arrives,
//! parsed on its own with serde_json. It holds at most one item (bounded by a limit, 16 MiB by
//! default) besides the chunk; items are never collected into a list. A broken item is reported
//! as [`Malformed`] and decoding goes on; a body that is not a list is a [`ListDecodeError`].
//! [`decode_list`] and the strict [`for_each_list_item`] run the same decoder over a body that
//! is already in memory.

use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::error::one_line;
use crate::objects::KubeObject;

/// One line of a watch stream, for objects of type `O`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame<O> {
    /// `ADDED`, `MODIFIED` or `DELETED`, with the object.
    Object {
        /// The event type.
        kind: ObjectEvent,
        /// The object: decoded, or raw when it did not decode as `O` (then [`decode_payload`]
        /// says why, with what is readable of its identity).
        object: Payload<O>,
    },
    /// `BOOKMARK`: only a resourceVersion (and, in a streaming list, the end of the initial
    /// events).
    Bookmark {
        /// `object.metadata.resourceVersion`.
        resource_version: Option<String>,
        /// Whether the object is annotated `k8s.io/initial-events-end: "true"`: the last of the
        /// initial events of a `sendInitialEvents=true` watch was sent.
        initial_events_end: bool,
    },
    /// `ERROR` (or a bare `Status` line): the watch failed.
    Error {
        /// Status `code` (410 for Expired).
        code: u16,
        /// Status `reason`.
        reason: String,
        /// Status `message`.
        message: String,
    },
    /// Any other type, ignored.
    Other(String),
}

/// The type of a watch event carrying an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectEvent {
    /// `ADDED`.
    Added,
    /// `MODIFIED`.
    Modified,
    /// `DELETED`.
    Deleted,
}

/// What is readable of an object that could not be decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    /// `kind`, when readable.
    pub kind: Option<String>,
    /// `metadata.namespace`, when readable.
    pub namespace: Option<String>,
    /// `metadata.name`, when readable.
    pub name: Option<String>,
}

impl Identity {
    /// Reads what it can from a raw object.
    pub fn of(v: &Value) -> Self {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        Self {
            kind: text(v.get("kind")),
            namespace: text(v.pointer("/metadata/namespace")),
            name: text(v.pointer("/metadata/name")),
        }
    }
}

/// An object that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    /// What is readable of it.
    pub identity: Identity,
    /// Why it failed.
    pub error: String,
}

/// The object of a watch event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Payload<O> {
    /// Decoded in the same pass as the line (the fast path: no intermediate `Value`).
    Typed(O),
    /// Kept as JSON because it did not decode as `O`.
    Raw(Value),
}

impl<O: KubeObject> Payload<O> {
    /// `metadata.resourceVersion`, when set.
    pub fn resource_version(&self) -> Option<String> {
        match self {
            Payload::Typed(o) => o
                .metadata()
                .resource_version
                .clone()
                .filter(|s| !s.is_empty()),
            Payload::Raw(v) => resource_version(v),
        }
    }
}

/// The object of a payload, or why it is unusable (wrong types, no name).
pub(crate) fn decode_payload<O: KubeObject>(p: Payload<O>) -> Result<O, Malformed> {
    match p {
        Payload::Typed(o) => {
            let m = o.metadata();
            if m.name.as_deref().is_none_or(str::is_empty) {
                return Err(Malformed {
                    identity: Identity {
                        kind: Some(O::KIND.to_string()),
                        namespace: m.namespace.clone(),
                        name: None,
                    },
                    error: "metadata.name is missing".to_string(),
                });
            }
            Ok(o)
        }
        Payload::Raw(v) => decode(v),
    }
}

/// A watch event decoded in one pass.
#[derive(serde::Deserialize)]
struct TypedEvent<O> {
    #[serde(rename = "type")]
    type_: String,
    object: O,
}

/// Parses one watch stream line. An event whose object decodes as `O` is decoded in one pass
/// (no intermediate `Value`); anything else (a `Status`, an object with wrong types) goes
/// through `Value`, so that errors keep what is readable. `Err` carries the JSON error of a line
/// that is not a watch event at all.
pub(crate) fn parse_frame<O: KubeObject>(line: &[u8]) -> Result<Frame<O>, String> {
    if let Ok(ev) = serde_json::from_slice::<TypedEvent<O>>(line)
        && ev.object.kind_field().is_none_or(|k| k == O::KIND)
    {
        let kind = match ev.type_.as_str() {
            "ADDED" => Some(ObjectEvent::Added),
            "MODIFIED" => Some(ObjectEvent::Modified),
            "DELETED" => Some(ObjectEvent::Deleted),
            _ => None,
        };
        if let Some(kind) = kind {
            return Ok(Frame::Object {
                kind,
                object: Payload::Typed(ev.object),
            });
        }
        if ev.type_ == "BOOKMARK" {
            let m = ev.object.metadata();
            return Ok(Frame::Bookmark {
                resource_version: m.resource_version.clone().filter(|s| !s.is_empty()),
                initial_events_end: m
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("k8s.io/initial-events-end"))
                    .map(String::as_str)
                    == Some("true"),
            });
        }
    }
    let mut v: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if v.get("kind").and_then(Value::as_str) == Some("Status") && v.get("type").is_none() {
        return Ok(status_frame(&v));
    }
    let Some(kind) = v.get("type").and_then(Value::as_str).map(str::to_string) else {
        return Err("not a watch event (no \"type\")".to_string());
    };
    let object = v.get_mut("object").map(Value::take).unwrap_or(Value::Null);
    Ok(match kind.as_str() {
        "ADDED" => Frame::Object {
            kind: ObjectEvent::Added,
            object: Payload::Raw(object),
        },
        "MODIFIED" => Frame::Object {
            kind: ObjectEvent::Modified,
            object: Payload::Raw(object),
        },
        "DELETED" => Frame::Object {
            kind: ObjectEvent::Deleted,
            object: Payload::Raw(object),
        },
        "BOOKMARK" => Frame::Bookmark {
            resource_version: resource_version(&object),
            initial_events_end: object
                .pointer("/metadata/annotations/k8s.io~1initial-events-end")
                .and_then(Value::as_str)
                == Some("true"),
        },
        "ERROR" => status_frame(&object),
        _ => Frame::Other(kind),
    })
}

fn status_frame<O>(status: &Value) -> Frame<O> {
    let text = |k: &str| {
        status
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Frame::Error {
        code: status
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(0),
        reason: text("reason"),
        message: text("message"),
    }
}

/// `metadata.resourceVersion` of a raw object.
pub(crate) fn resource_version(v: &Value) -> Option<String> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Decodes a raw object into `T`. The object must also have a non-empty `metadata.name`, and
/// its `kind`, when it has one, must be `T`'s.
pub(crate) fn decode<T: KubeObject>(v: Value) -> Result<T, Malformed> {
    let identity = Identity::of(&v);
    if identity.name.as_deref().is_none_or(str::is_empty) {
        return Err(Malformed {
            identity,
            error: "metadata.name is missing".to_string(),
        });
    }
    if let Some(kind) = identity.kind.as_deref().filter(|k| *k != T::KIND) {
        return Err(Malformed {
            error: format!("kind is {kind:?}, expected {:?}", T::KIND),
            identity,
        });
    }
    serde_json::from_value(v).map_err(|e| Malformed {
        identity,
        error: e.to_string(),
    })
}

/// Parses a list response held in memory (`{"metadata":{"resourceVersion":..},"items":[..]}`),
/// calling `f` with each item; `f` returns `false` to stop (the parse then fails). Returns the
/// list's resourceVersion. The buffered, strict form of [`ListDecoder`]: an item that is not a
/// JSON object fails the whole parse.
#[cfg_attr(
    not(test),
    allow(dead_code, reason = "strict entry point for bodies already in memory")
)]
pub(crate) fn for_each_list_item<F: FnMut(Value) -> bool>(
    body: &[u8],
    mut f: F,
) -> Result<Option<String>, ListDecodeError> {
    let mut decoder = ListDecoder::new();
    let mut bad = None;
    decoder.feed(body, &mut |item| match item {
        Ok(v) => f(v),
        Err(m) => {
            bad = Some(m.error);
            false
        }
    })?;
    if let Some(message) = bad {
        return Err(ListDecodeError::Syntax {
            offset: decoder.offset(),
            message,
        });
    }
    decoder.finish().map(|meta| meta.resource_version)
}

// ---------------------------------------------------------------------------------------------
// Streaming list decoding.
// ---------------------------------------------------------------------------------------------

/// Default limit on the size of one list item, in bytes (16 MiB); a larger item is reported as
/// [`Malformed`] and skipped.
pub(crate) const DEFAULT_MAX_ITEM_BYTES: usize = 16 << 20;

/// Size of the read buffer of [`for_each_list_item_streamed`].
const READ_BUFFER_BYTES: usize = 64 << 10;

/// Longest top-level key that is kept for matching: a longer one is none of the keys the decoder
/// reads (even fully `\u`-escaped), so it is skipped without being held.
const MAX_KEY_BYTES: usize = 256;

/// Capacity that the item buffer keeps after a large item; beyond it the buffer is shrunk, so a
/// single large item does not pin its memory for the rest of the list.
const KEEP_BUFFER_BYTES: usize = 1 << 20;

/// Nesting levels whose bracket kind (`{` or `[`) is checked against its closing bracket; deeper
/// levels are only counted, so the decoder's memory stays fixed whatever the input.
const CHECKED_DEPTH: usize = 256;

/// A list response that cannot be decoded at all. Every message is one line and, where it
/// applies, names the byte offset in the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ListDecodeError {
    /// The body was empty (or only whitespace).
    #[error("the list response is empty")]
    Empty,
    /// The body is not JSON of the shape of a list object.
    #[error("invalid list response at byte {offset}: {message}")]
    Syntax {
        /// Byte offset in the body of the offending byte (or of the value that failed).
        offset: u64,
        /// What was expected or what is wrong.
        message: String,
    },
    /// The body ended before the list object was complete.
    #[error("the list response is truncated: it ends at byte {offset}, {inside}")]
    Truncated {
        /// Length of the body.
        offset: u64,
        /// Where the decoder was (for example "inside item 12 (from byte 3456)").
        inside: String,
    },
    /// The body is a Kubernetes `Status` (an error answer) instead of a list.
    #[error(
        "the API server answered with a Status instead of a list: code {code} {reason}: {message}"
    )]
    Status {
        /// Status `code` (0 when absent).
        code: u16,
        /// Status `reason`.
        reason: String,
        /// Status `message`.
        message: String,
    },
    /// The body is a complete JSON object without `items`.
    #[error("the response is not a list: it has no \"items\" (kind {})", kind.as_deref().unwrap_or("unknown"))]
    NotAList {
        /// The object's `kind`, when it has one.
        kind: Option<String>,
    },
    /// The list's `metadata` is larger than the item limit.
    #[error("the list metadata at byte {offset} is larger than {limit} bytes")]
    MetadataTooLarge {
        /// Byte offset where `metadata` starts.
        offset: u64,
        /// The limit (the decoder's `max_item_bytes`).
        limit: usize,
    },
    /// Reading the body failed.
    #[error("reading the list response failed at byte {offset}: {message}")]
    Read {
        /// Bytes read before the failure.
        offset: u64,
        /// The I/O error.
        message: String,
    },
    /// The item callback returned `false`; the list was not read to its end.
    #[error("list decoding stopped by the consumer at byte {offset}")]
    Stopped {
        /// Byte offset just after the last item handed to the callback.
        offset: u64,
    },
}

/// What a list response says about itself, returned by [`ListDecoder::finish`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ListMeta {
    /// `metadata.resourceVersion`, when present and non-empty.
    pub resource_version: Option<String>,
    /// `metadata.continue`, when present and non-empty (the next page's token).
    pub continue_token: Option<String>,
    /// The list's `kind` (`PodList`, ...), when present.
    pub kind: Option<String>,
    /// Number of elements of `items` handed to the callback, malformed ones included.
    pub items: u64,
}

/// What [`ListDecoder::feed`] reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feed {
    /// The list object is not complete yet: feed the next chunk.
    More,
    /// The closing `}` of the list object was seen; only whitespace may follow. Call
    /// [`ListDecoder::finish`] at the end of the body.
    Complete,
    /// The callback returned `false`; further chunks are ignored and
    /// [`ListDecoder::finish`] reports [`ListDecodeError::Stopped`].
    Stopped,
}

/// Where the decoder is in the top-level object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `{`.
    Start,
    /// After `{`: a key or `}`.
    FirstKey,
    /// After `,` between members: a key.
    Key,
    /// Inside a top-level key.
    InKey,
    /// After a key: `:`.
    Colon,
    /// After `:`: the first byte of the value.
    Value,
    /// Inside a top-level value other than the `items` array.
    InValue,
    /// After a value: `,` or `}`.
    AfterValue,
    /// After the `[` of `items`: an item or `]`.
    FirstItem,
    /// After `,` between items: an item.
    Item,
    /// Inside an item.
    InItem,
    /// After an item: `,` or `]`.
    AfterItem,
    /// After the closing `}`: only whitespace.
    Done,
    /// The callback asked to stop.
    Stopped,
}

/// The top-level keys the decoder reads; the values of all others are skipped unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// `items`: the array that is split into items (or `null`).
    Items,
    /// `metadata`: parsed for `resourceVersion` and `continue`.
    Metadata,
    /// `kind`.
    Kind,
    /// `code` (of a `Status`).
    Code,
    /// `reason` (of a `Status`).
    Reason,
    /// `message` (of a `Status`).
    Message,
    /// Anything else.
    Other,
}

impl Key {
    /// The key for its (unescaped) name.
    fn of(name: &[u8]) -> Self {
        match name {
            b"items" => Key::Items,
            b"metadata" => Key::Metadata,
            b"kind" => Key::Kind,
            b"code" => Key::Code,
            b"reason" => Key::Reason,
            b"message" => Key::Message,
            _ => Key::Other,
        }
    }
}

/// What the value being scanned is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// An element of `items`.
    Item,
    /// The value of a top-level key (held only when the key is read, see [`Key`]).
    Field(Key),
}

/// The fields of a `Status` body, kept until [`ListDecoder::finish`] knows the body's kind.
#[derive(Debug, Clone, Default)]
struct StatusFields {
    /// `code`.
    code: Option<u16>,
    /// `reason`.
    reason: Option<String>,
    /// `message`.
    message: Option<String>,
}

/// Why [`Scan::run`] failed: the position in the slice and what is wrong.
#[derive(Debug, Clone, Copy)]
struct ScanError {
    /// Index of the offending byte in the slice passed to [`Scan::run`].
    at: usize,
    /// What is wrong.
    what: &'static str,
}

/// The lexical mode of a [`Scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing seen yet: the next byte starts the value.
    Fresh,
    /// Inside an object or array, outside strings.
    Nested,
    /// Inside a string.
    Str,
    /// Inside a string, just after a backslash: the next byte is escaped.
    Escape,
    /// Inside a number or literal (`true`, `false`, `null`).
    Scalar,
}

/// Finds where one JSON value ends, across any number of slices, without parsing it: tracks
/// strings (with escapes) and bracket nesting. It does not validate the value; serde_json does
/// that once the value is complete.
#[derive(Debug, Clone)]
struct Scan {
    /// The lexical mode.
    mode: Mode,
    /// Open brackets.
    depth: usize,
    /// Bit `d` is set when nesting level `d` (below [`CHECKED_DEPTH`]) is an array.
    arrays: [u64; CHECKED_DEPTH / 64],
}

impl Scan {
    /// A scan of a value whose first byte is still to come.
    fn value() -> Self {
        Self {
            mode: Mode::Fresh,
            depth: 0,
            arrays: [0; CHECKED_DEPTH / 64],
        }
    }

    /// A scan of a string whose opening quote was already consumed.
    fn string() -> Self {
        Self {
            mode: Mode::Str,
            ..Self::value()
        }
    }

    /// Advances over `b`. `Ok(Some(n))`: the value ends within `b` and `b[..n]` is its last part
    /// (a number or literal ends before the delimiter that ends it, which is not consumed);
    /// `Ok(None)`: all of `b` belongs to the value and more is needed.
    fn run(&mut self, b: &[u8]) -> Result<Option<usize>, ScanError> {
        let mut i = 0;
        while i < b.len() {
            match self.mode {
                Mode::Str => match memchr::memchr2(b'"', b'\\', &b[i..]) {
                    None => return Ok(None),
                    Some(k) => {
                        i += k + 1;
                        if b[i - 1] == b'\\' {
                            self.mode = Mode::Escape;
                        } else if self.depth == 0 {
                            return Ok(Some(i));
                        } else {
                            self.mode = Mode::Nested;
                        }
                    }
                },
                Mode::Escape => {
                    // `\"` and `\\` are the escapes that matter; the hex digits of `\uXXXX` and
                    // UTF-8 continuation bytes are never `"` or `\`.
                    i += 1;
                    self.mode = Mode::Str;
                }
                Mode::Nested => {
                    while i < b.len() {
                        let c = b[i];
                        i += 1;
                        match c {
                            b'"' => {
                                self.mode = Mode::Str;
                                break;
                            }
                            b'{' => self.open(false),
                            b'[' => self.open(true),
                            b'}' | b']' => {
                                self.close(c == b']')
                                    .map_err(|what| ScanError { at: i - 1, what })?;
                                if self.depth == 0 {
                                    return Ok(Some(i));
                                }
                            }
                            _ => {}
                        }
                    }
                }
                Mode::Scalar => {
                    return Ok(b[i..].iter().position(|&c| ends_scalar(c)).map(|k| i + k));
                }
                Mode::Fresh => {
                    let c = b[i];
                    match c {
                        b'{' | b'[' => {
                            self.open(c == b'[');
                            self.mode = Mode::Nested;
                        }
                        b'"' => self.mode = Mode::Str,
                        c if ends_scalar(c) => {
                            return Err(ScanError {
                                at: i,
                                what: "expected a value",
                            });
                        }
                        _ => self.mode = Mode::Scalar,
                    }
                    i += 1;
                }
            }
        }
        Ok(None)
    }

    /// Enters a nesting level.
    fn open(&mut self, array: bool) {
        if let Some(word) = self.arrays.get_mut(self.depth / 64) {
            let bit = 1u64 << (self.depth % 64);
            if array {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
        self.depth += 1;
    }

    /// Leaves a nesting level, checking the bracket matches the one that opened it.
    fn close(&mut self, array: bool) -> Result<(), &'static str> {
        self.depth = self.depth.saturating_sub(1);
        match self.arrays.get(self.depth / 64) {
            Some(word) if (word >> (self.depth % 64)) & 1 == 1 && !array => {
                Err("`}` closes an array")
            }
            Some(word) if (word >> (self.depth % 64)) & 1 == 0 && array => {
                Err("`]` closes an object")
            }
            _ => Ok(()),
        }
    }
}

/// Whether `c` ends a number or literal (whitespace or a structural character).
fn ends_scalar(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t' | b'\n' | b'\r' | b',' | b']' | b'}' | b':' | b'"' | b'[' | b'{'
    )
}

/// Whether `c` is JSON whitespace.
fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// The value being scanned: an item, or a top-level value.
#[derive(Debug, Clone)]
struct Flight {
    /// Where it ends.
    scan: Scan,
    /// What it is for.
    purpose: Purpose,
    /// Byte offset of its first byte in the body.
    start: u64,
    /// Its bytes so far.
    len: u64,
    /// Set once it is over the limit: what identity its first `max_item_bytes` showed.
    oversized: Option<Identity>,
}

/// An incremental, push-based decoder of a Kubernetes list response
/// (`{"kind":"PodList","metadata":{..},"items":[{..},..]}`).
///
/// Chunks of the body are pushed in with [`feed`](Self::feed) as they arrive, split anywhere
/// (inside a string, an escape or a UTF-8 character); each element of `items` is parsed with
/// serde_json and handed to the callback as soon as its last byte arrives. A byte-level state
/// machine walks the top-level object: its keys may come in any order, `metadata` is parsed
/// (for `resourceVersion` and `continue`), `kind` is kept, and the values of other keys are
/// skipped without being held or validated.
///
/// Memory: at most one item's bytes are held (an item that lies entirely within one chunk is
/// parsed from the chunk, without a copy), never more than `max_item_bytes` of them; an item
/// over the limit is skipped and reported as [`Malformed`] with the identity its first
/// `max_item_bytes` show.
///
/// An item that is not valid JSON, or valid JSON but not an object, is reported as
/// `Err(Malformed)` and decoding goes on with the next item. A body that is not a list object
/// (not JSON, a `Status`, no `items`, mismatched brackets, truncated) is a
/// [`ListDecodeError`] naming the byte offset. A duplicated top-level key is not detected: every
/// `items` array is split, and the last `metadata` wins.
#[derive(Debug)]
pub(crate) struct ListDecoder {
    /// Limit on one item's (or `metadata`'s) size.
    max_item_bytes: usize,
    /// Where the decoder is.
    state: State,
    /// Bytes of the body consumed before the current chunk.
    offset: u64,
    /// The current top-level key.
    key: Key,
    /// The current key's raw bytes while it is read (empty once it is over [`MAX_KEY_BYTES`]).
    key_bytes: Vec<u8>,
    /// Whether the current key is longer than [`MAX_KEY_BYTES`].
    key_long: bool,
    /// The value being scanned.
    flight: Flight,
    /// The parts of the value being scanned that arrived in earlier chunks.
    buf: Vec<u8>,
    /// Whether an `items` key (array or `null`) was seen.
    has_items: bool,
    /// What is known of the list so far.
    meta: ListMeta,
    /// The fields of a `Status` body.
    status: StatusFields,
    /// The error already returned: the decoder is poisoned.
    failed: Option<ListDecodeError>,
}

impl Default for ListDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ListDecoder {
    /// A decoder with the default item limit, [`DEFAULT_MAX_ITEM_BYTES`].
    pub(crate) fn new() -> Self {
        Self::with_max_item_bytes(DEFAULT_MAX_ITEM_BYTES)
    }

    /// A decoder that skips (and reports as malformed) any item larger than `max_item_bytes`.
    pub(crate) fn with_max_item_bytes(max_item_bytes: usize) -> Self {
        Self {
            max_item_bytes,
            state: State::Start,
            offset: 0,
            key: Key::Other,
            key_bytes: Vec::new(),
            key_long: false,
            flight: Flight {
                scan: Scan::value(),
                purpose: Purpose::Field(Key::Other),
                start: 0,
                len: 0,
                oversized: None,
            },
            buf: Vec::new(),
            has_items: false,
            meta: ListMeta::default(),
            status: StatusFields::default(),
            failed: None,
        }
    }

    /// Bytes of the body consumed so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Feeds the next chunk of the body; calls `on_item` with each complete item of `items` as
    /// soon as its last byte arrives, in order. `on_item` returns `false` to stop: the rest of
    /// the chunk and later chunks are then ignored ([`Feed::Stopped`]).
    ///
    /// After an error every later call returns the same error.
    pub(crate) fn feed(
        &mut self,
        chunk: &[u8],
        on_item: &mut dyn FnMut(Result<Value, Malformed>) -> bool,
    ) -> Result<Feed, ListDecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.state == State::Stopped {
            return Ok(Feed::Stopped);
        }
        match self.run(chunk, on_item) {
            Ok(consumed) => {
                self.offset += consumed as u64;
                Ok(match self.state {
                    State::Done => Feed::Complete,
                    State::Stopped => Feed::Stopped,
                    _ => Feed::More,
                })
            }
            Err(e) => {
                self.failed = Some(e.clone());
                self.release();
                Err(e)
            }
        }
    }

    /// At the end of the body: checks the list object was complete, that it is a list (not a
    /// `Status`, and it has `items`), and returns its metadata.
    pub(crate) fn finish(self) -> Result<ListMeta, ListDecodeError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match self.state {
            State::Done => {}
            State::Stopped => {
                return Err(ListDecodeError::Stopped {
                    offset: self.offset,
                });
            }
            State::Start => return Err(ListDecodeError::Empty),
            _ => {
                return Err(ListDecodeError::Truncated {
                    offset: self.offset,
                    inside: self.whereabouts(),
                });
            }
        }
        if self.meta.kind.as_deref() == Some("Status") {
            return Err(ListDecodeError::Status {
                code: self.status.code.unwrap_or(0),
                reason: self.status.reason.unwrap_or_default(),
                message: self
                    .status
                    .message
                    .map(|m| one_line(&m))
                    .unwrap_or_default(),
            });
        }
        if !self.has_items {
            return Err(ListDecodeError::NotAList {
                kind: self.meta.kind,
            });
        }
        Ok(self.meta)
    }

    /// Bytes held for the value in flight (for tests of the memory bound).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.buf.len() + self.key_bytes.len()
    }

    /// Where the decoder is, for [`ListDecodeError::Truncated`].
    fn whereabouts(&self) -> String {
        match self.state {
            State::FirstItem | State::Item | State::AfterItem => {
                format!("inside \"items\", after {} items", self.meta.items)
            }
            State::InItem => format!(
                "inside item {} (from byte {})",
                self.meta.items, self.flight.start
            ),
            State::InValue => {
                let name = match self.key {
                    Key::Items => "\"items\"",
                    Key::Metadata => "\"metadata\"",
                    Key::Kind => "\"kind\"",
                    Key::Code => "\"code\"",
                    Key::Reason => "\"reason\"",
                    Key::Message => "\"message\"",
                    Key::Other => "a top-level value",
                };
                format!("inside {name} (from byte {})", self.flight.start)
            }
            _ => "inside the list object".to_string(),
        }
    }

    /// Runs the state machine over `chunk`; returns the bytes consumed (all of them unless the
    /// callback stopped).
    fn run(
        &mut self,
        chunk: &[u8],
        on_item: &mut dyn FnMut(Result<Value, Malformed>) -> bool,
    ) -> Result<usize, ListDecodeError> {
        let mut i = 0;
        while i < chunk.len() {
            match self.state {
                State::InKey => {
                    i = self.key_part(chunk, i)?;
                    continue;
                }
                State::InValue | State::InItem => {
                    i = self.value_part(chunk, i, on_item)?;
                    if self.state == State::Stopped {
                        return Ok(i);
                    }
                    continue;
                }
                State::Stopped => return Ok(i),
                _ => {}
            }
            let Some(k) = chunk[i..].iter().position(|&c| !is_ws(c)) else {
                break;
            };
            i += k;
            let c = chunk[i];
            let at = self.offset + i as u64;
            let expected = |what: &str| ListDecodeError::Syntax {
                offset: at,
                message: format!("expected {what}, found {}", show(c)),
            };
            match self.state {
                State::Start if c == b'{' => self.state = State::FirstKey,
                State::Start => return Err(expected("a list object (`{`)")),
                State::FirstKey if c == b'}' => self.state = State::Done,
                State::FirstKey | State::Key if c == b'"' => {
                    self.key_bytes.clear();
                    self.key_long = false;
                    self.flight.scan = Scan::string();
                    self.state = State::InKey;
                }
                State::FirstKey => return Err(expected("a key or `}`")),
                State::Key => return Err(expected("a key")),
                State::Colon if c == b':' => self.state = State::Value,
                State::Colon => return Err(expected("`:`")),
                State::Value if self.key == Key::Items && c == b'[' => {
                    self.has_items = true;
                    self.state = State::FirstItem;
                }
                State::Value if self.key == Key::Items && c != b'n' => {
                    return Err(expected("\"items\" to be an array or null"));
                }
                State::Value => {
                    self.begin(Purpose::Field(self.key), at);
                    self.state = State::InValue;
                    continue;
                }
                State::AfterValue if c == b',' => self.state = State::Key,
                State::AfterValue if c == b'}' => self.state = State::Done,
                State::AfterValue => return Err(expected("`,` or `}`")),
                State::FirstItem if c == b']' => self.state = State::AfterValue,
                State::Item if c == b']' => return Err(expected("an item after `,`")),
                State::FirstItem | State::Item => {
                    self.begin(Purpose::Item, at);
                    self.state = State::InItem;
                    continue;
                }
                State::AfterItem if c == b',' => self.state = State::Item,
                State::AfterItem if c == b']' => self.state = State::AfterValue,
                State::AfterItem => return Err(expected("`,` or `]` in \"items\"")),
                State::Done => return Err(expected("the end of the body after the list object")),
                State::InKey | State::InValue | State::InItem | State::Stopped => {}
            }
            i += 1;
        }
        Ok(chunk.len())
    }

    /// Scans the current key from `chunk[i..]`; returns where the scan stopped.
    fn key_part(&mut self, chunk: &[u8], i: usize) -> Result<usize, ListDecodeError> {
        let rest = &chunk[i..];
        let end = self
            .flight
            .scan
            .run(rest)
            .map_err(|e| self.scan_error(i, e))?;
        let (raw, next) = match end {
            // The closing quote is not part of the name.
            Some(n) => (&rest[..n - 1], i + n),
            None => (rest, chunk.len()),
        };
        if !self.key_long {
            if self.key_bytes.len() + raw.len() > MAX_KEY_BYTES {
                self.key_long = true;
                self.key_bytes.clear();
            } else {
                self.key_bytes.extend_from_slice(raw);
            }
        }
        if end.is_some() {
            self.key = self.finished_key(self.offset + next as u64)?;
            self.key_bytes.clear();
            self.state = State::Colon;
        }
        Ok(next)
    }

    /// The key just read (unescaped when it has escapes).
    fn finished_key(&self, at: u64) -> Result<Key, ListDecodeError> {
        if self.key_long {
            return Ok(Key::Other);
        }
        if !self.key_bytes.contains(&b'\\') {
            return Ok(Key::of(&self.key_bytes));
        }
        let mut quoted = Vec::with_capacity(self.key_bytes.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(&self.key_bytes);
        quoted.push(b'"');
        match serde_json::from_slice::<String>(&quoted) {
            Ok(name) => Ok(Key::of(name.as_bytes())),
            Err(e) => Err(ListDecodeError::Syntax {
                offset: at,
                message: format!("invalid key: {e}"),
            }),
        }
    }

    /// Starts scanning a value whose first byte is at body offset `at`.
    fn begin(&mut self, purpose: Purpose, at: u64) {
        self.flight.scan = Scan::value();
        self.flight.purpose = purpose;
        self.flight.start = at;
        self.flight.len = 0;
        self.flight.oversized = None;
        self.buf.clear();
    }

    /// Scans the value in flight from `chunk[i..]`, holding or completing it; returns where the
    /// scan stopped.
    fn value_part(
        &mut self,
        chunk: &[u8],
        i: usize,
        on_item: &mut dyn FnMut(Result<Value, Malformed>) -> bool,
    ) -> Result<usize, ListDecodeError> {
        let rest = &chunk[i..];
        match self
            .flight
            .scan
            .run(rest)
            .map_err(|e| self.scan_error(i, e))?
        {
            None => {
                self.hold(rest);
                Ok(chunk.len())
            }
            Some(n) => {
                self.complete(&rest[..n], on_item)?;
                Ok(i + n)
            }
        }
    }

    /// The [`ListDecodeError`] for a scan error in the chunk slice starting at `i`.
    fn scan_error(&self, i: usize, e: ScanError) -> ListDecodeError {
        ListDecodeError::Syntax {
            offset: self.offset + (i + e.at) as u64,
            message: e.what.to_string(),
        }
    }

    /// Whether the value in flight is held (skipped values are only scanned).
    fn holds(&self) -> bool {
        self.flight.purpose != Purpose::Field(Key::Other)
    }

    /// Keeps `part` of the value in flight, up to the limit; past it, reads the identity of the
    /// held prefix and drops it.
    fn hold(&mut self, part: &[u8]) {
        let before = self.flight.len;
        self.flight.len += part.len() as u64;
        if !self.holds() || self.flight.oversized.is_some() {
            return;
        }
        let max = self.max_item_bytes as u64;
        if self.flight.len <= max {
            self.buf.extend_from_slice(part);
            return;
        }
        let room = usize::try_from(max.saturating_sub(before)).unwrap_or(0);
        self.buf
            .extend_from_slice(part.get(..room).unwrap_or_default());
        self.flight.oversized = Some(self.prefix_identity(&self.buf));
        self.release();
    }

    /// Identity shown by the first bytes of an oversized value (items only).
    fn prefix_identity(&self, prefix: &[u8]) -> Identity {
        if self.flight.purpose == Purpose::Item {
            readable_identity(prefix)
        } else {
            Identity::default()
        }
    }

    /// Empties the held bytes, shrinking the buffer after a large value.
    fn release(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > KEEP_BUFFER_BYTES {
            self.buf.shrink_to(KEEP_BUFFER_BYTES);
        }
    }

    /// Completes the value in flight with its last part and acts on it.
    fn complete(
        &mut self,
        last: &[u8],
        on_item: &mut dyn FnMut(Result<Value, Malformed>) -> bool,
    ) -> Result<(), ListDecodeError> {
        if !self.holds() {
            self.state = State::AfterValue;
            return Ok(());
        }
        let before = self.flight.len;
        let total = before + last.len() as u64;
        self.flight.len = total;
        let max = self.max_item_bytes as u64;
        if self.flight.oversized.is_none() && total > max {
            let room = usize::try_from(max.saturating_sub(before)).unwrap_or(0);
            let head = last.get(..room).unwrap_or_default();
            let identity = if before == 0 {
                self.prefix_identity(head)
            } else {
                self.buf.extend_from_slice(head);
                self.prefix_identity(&self.buf)
            };
            self.flight.oversized = Some(identity);
        }
        let mut buf = std::mem::take(&mut self.buf);
        let bytes = match self.flight.oversized.take() {
            Some(identity) => Err(identity),
            // An item within one chunk is parsed from the chunk, without a copy.
            None if before == 0 => Ok(last),
            None => {
                buf.extend_from_slice(last);
                Ok(&buf[..])
            }
        };
        let start = self.flight.start;
        let outcome = match self.flight.purpose {
            Purpose::Item => {
                let index = self.meta.items;
                self.meta.items += 1;
                let item = match bytes {
                    Ok(bytes) => parse_item(bytes, index, start),
                    Err(identity) => Err(Malformed {
                        identity,
                        error: format!(
                            "list item {index} at byte {start} is {total} bytes, over the limit of {max}; skipped"
                        ),
                    }),
                };
                self.state = if on_item(item) {
                    State::AfterItem
                } else {
                    State::Stopped
                };
                Ok(())
            }
            Purpose::Field(key) => {
                self.state = State::AfterValue;
                self.field(key, bytes.ok(), start)
            }
        };
        self.buf = buf;
        self.release();
        outcome
    }

    /// Acts on the complete value of a top-level key (`None`: it was over the limit).
    fn field(&mut self, key: Key, bytes: Option<&[u8]>, start: u64) -> Result<(), ListDecodeError> {
        let Some(bytes) = bytes else {
            return match key {
                Key::Metadata => Err(ListDecodeError::MetadataTooLarge {
                    offset: start,
                    limit: self.max_item_bytes,
                }),
                // An `items` that is not `[` must be `null`: a few bytes.
                Key::Items => Err(ListDecodeError::Syntax {
                    offset: start,
                    message: "expected \"items\" to be an array or null".to_string(),
                }),
                _ => Ok(()),
            };
        };
        if key == Key::Items {
            if bytes != b"null" {
                return Err(ListDecodeError::Syntax {
                    offset: start,
                    message: "expected \"items\" to be an array or null".to_string(),
                });
            }
            self.has_items = true;
            return Ok(());
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ListDecodeError::Syntax {
            offset: start,
            message: format!("invalid value of a top-level key: {e}"),
        })?;
        let text = |v: &Value| v.as_str().map(str::to_string);
        match key {
            Key::Metadata => {
                let field = |name: &str| {
                    value
                        .get(name)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                };
                self.meta.resource_version = field("resourceVersion");
                self.meta.continue_token = field("continue");
            }
            Key::Kind => self.meta.kind = text(&value),
            Key::Code => {
                self.status.code = value.as_u64().and_then(|c| u16::try_from(c).ok());
            }
            Key::Reason => self.status.reason = text(&value),
            Key::Message => self.status.message = text(&value),
            Key::Items | Key::Other => {}
        }
        Ok(())
    }
}

/// Parses one complete list item: it must be a JSON object.
fn parse_item(bytes: &[u8], index: u64, start: u64) -> Result<Value, Malformed> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(v) => Err(Malformed {
            identity: Identity::default(),
            error: format!(
                "list item {index} at byte {start} is not an object but {}",
                json_type(&v)
            ),
        }),
        Err(e) => Err(Malformed {
            identity: readable_identity(bytes),
            error: format!("list item {index} at byte {start} is not valid JSON: {e}"),
        }),
    }
}

/// The JSON type of a value, with its article, for messages.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A byte for a message: printable ASCII quoted, anything else in hex.
fn show(c: u8) -> String {
    if c.is_ascii_graphic() {
        format!("`{}`", char::from(c))
    } else {
        format!("byte 0x{c:02x}")
    }
}

/// Reads `kind`, `metadata.namespace` and `metadata.name` from the bytes of an object that is
/// not valid JSON or was cut at the item limit: the members before the first error are read.
fn readable_identity(bytes: &[u8]) -> Identity {
    let mut identity = Identity::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // The error is expected (the bytes are broken or cut); what was read before it is kept.
    let _ = IdentitySeed {
        identity: &mut identity,
        metadata: false,
    }
    .deserialize(&mut de);
    identity
}

/// Reads an object's identity members into `identity` (see [`readable_identity`]).
struct IdentitySeed<'a> {
    /// Where the members go.
    identity: &'a mut Identity,
    /// Whether this is the `metadata` object (else the item itself).
    metadata: bool,
}

impl<'de> DeserializeSeed<'de> for IdentitySeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for IdentitySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let text = |v: Value| v.as_str().map(str::to_string);
        while let Some(key) = map.next_key::<String>()? {
            match (self.metadata, key.as_str()) {
                (false, "kind") => self.identity.kind = text(map.next_value()?),
                (false, "metadata") => {
                    map.next_value_seed(IdentitySeed {
                        identity: &mut *self.identity,
                        metadata: true,
                    })?;
                    if self.identity.kind.is_some() {
                        // All there is to read; the rest may be large.
                        return Ok(());
                    }
                }
                (true, "name") => self.identity.name = text(map.next_value()?),
                (true, "namespace") => self.identity.namespace = text(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Decodes a whole list body held in memory with a [`ListDecoder`]: the same results as feeding
/// it in chunks.
#[cfg_attr(
    not(test),
    allow(dead_code, reason = "entry point for bodies already in memory")
)]
pub(crate) fn decode_list(
    body: &[u8],
    max_item_bytes: usize,
    mut on_item: impl FnMut(Result<Value, Malformed>) -> bool,
) -> Result<ListMeta, ListDecodeError> {
    let mut decoder = ListDecoder::with_max_item_bytes(max_item_bytes);
    decoder.feed(body, &mut on_item)?;
    decoder.finish()
}

/// Decodes a list response as it streams in from `reader`: reads it with a fixed 64 KiB buffer
/// into a [`ListDecoder`], calling `on_item` with each item as soon as it is complete
/// (`on_item` returns `false` to stop: the result is then [`ListDecodeError::Stopped`]). Holds
/// at most the read buffer and one item (of at most `max_item_bytes`; larger items are reported
/// as [`Malformed`] and skipped).
///
/// Parsing runs on the calling task: for a large list the caller may prefer to run this on a
/// blocking thread (with `futures::executor::block_on`) or feed a [`ListDecoder`] there.
#[cfg_attr(
    not(test),
    allow(
        dead_code,
        reason = "entry point for readers; Watcher::list feeds a ListDecoder"
    )
)]
pub(crate) async fn for_each_list_item_streamed<R: futures::AsyncRead>(
    reader: R,
    max_item_bytes: usize,
    mut on_item: impl FnMut(Result<Value, Malformed>) -> bool,
) -> Result<ListMeta, ListDecodeError> {
    use futures::AsyncReadExt as _;

    let mut reader = std::pin::pin!(reader);
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    let mut decoder = ListDecoder::with_max_item_bytes(max_item_bytes);
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(ListDecodeError::Read {
                    offset: decoder.offset(),
                    message: one_line(&e.to_string()),
                });
            }
        };
        let chunk = buf.get(..n).unwrap_or(&buf[..]);
        if decoder.feed(chunk, &mut on_item)? == Feed::Stopped {
            break;
        }
    }
    decoder.finish()
}

#[cfg(test)]
mod stream_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::Pod;

    #[test]
    fn frames() {
        let f = parse_frame::<Pod>(
            br#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"12"}}}"#,
        )
        .unwrap();
        assert_eq!(
            f,
            Frame::Bookmark {
                resource_version: Some("12".into()),
                initial_events_end: false,
            }
        );
        let f = parse_frame::<Pod>(
            br#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"13","annotations":{"k8s.io/initial-events-end":"true"}}}}"#,
        )
        .unwrap();
        assert_eq!(
            f,
            Frame::Bookmark {
                resource_version: Some("13".into()),
                initial_events_end: true,
            }
        );
        let f = parse_frame::<Pod>(br#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}"#).unwrap();
        assert_eq!(
            f,
            Frame::Error {
                code: 410,
                reason: "Expired".into(),
                message: "too old".into()
            }
        );
        assert!(parse_frame::<Pod>(b"{not json").is_err());
        assert!(parse_frame::<Pod>(b"{\"object\":{}}").is_err());
        // Objects decode in one pass; objects with wrong types stay raw (their identity is
        // readable for the error message).
        let f = parse_frame::<Pod>(
            br#"{"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","namespace":"n","resourceVersion":"14"}}}"#,
        )
        .unwrap();
        let Frame::Object { kind, object } = f else {
            panic!("not an object frame")
        };
        assert_eq!(kind, ObjectEvent::Modified);
        assert!(matches!(object, Payload::Typed(_)));
        assert_eq!(object.resource_version().as_deref(), Some("14"));
        let f = parse_frame::<Pod>(
            br#"{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"b","namespace":"n","resourceVersion":"15"},"status":{"containerStatuses":"oops"}}}"#,
        )
        .unwrap();
        let Frame::Object { object, .. } = f else {
            panic!("not an object frame")
        };
        assert!(matches!(object, Payload::Raw(_)));
        assert_eq!(object.resource_version().as_deref(), Some("15"));
        let err = decode_payload(object).unwrap_err();
        assert_eq!(err.identity.name.as_deref(), Some("b"));
        // An object of another kind on the stream is malformed too.
        let f = parse_frame::<Pod>(
            br#"{"type":"ADDED","object":{"kind":"Node","metadata":{"name":"c","resourceVersion":"16"}}}"#,
        )
        .unwrap();
        let Frame::Object { object, .. } = f else {
            panic!("not an object frame")
        };
        assert!(matches!(object, Payload::Raw(_)));
        let err = decode_payload(object).unwrap_err();
        assert_eq!(err.error, "kind is \"Node\", expected \"Pod\"");
        let unnamed = parse_frame::<Pod>(
            br#"{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"namespace":"n"}}}"#,
        )
        .unwrap();
        let Frame::Object { object, .. } = unnamed else {
            panic!("not an object frame")
        };
        assert!(decode_payload(object).is_err());
    }

    #[test]
    fn malformed_object_keeps_identity() {
        let v = serde_json::json!({"kind":"Pod","metadata":{"name":"p","namespace":"ns"},"status":{"phase":7}});
        let err = decode::<Pod>(v).unwrap_err();
        assert_eq!(err.identity.name.as_deref(), Some("p"));
        assert_eq!(err.identity.namespace.as_deref(), Some("ns"));
        let v = serde_json::json!({"kind":"Pod","metadata":{}});
        assert!(decode::<Pod>(v).is_err());
    }

    #[test]
    fn list_items_one_by_one() {
        let body =
            br#"{"kind":"PodList","items":[{"a":1},{"b":2}],"metadata":{"resourceVersion":"7"}}"#;
        let mut seen = Vec::new();
        let rv = for_each_list_item(body, |v| {
            seen.push(v);
            true
        })
        .unwrap();
        assert_eq!(rv.as_deref(), Some("7"));
        assert_eq!(seen.len(), 2);
        let rv = for_each_list_item(br#"{"items":null,"metadata":{}}"#, |_| true).unwrap();
        assert_eq!(rv, None);
        assert!(for_each_list_item(b"[1]", |_| true).is_err());
    }
}
