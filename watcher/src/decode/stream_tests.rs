//! Tests of the streaming list decoder ([`ListDecoder`]): real list fixtures, generated lists
//! split at every kind of chunk boundary (property tests), broken bodies and items, the item
//! limit and the memory bound.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::objects::{Event, Node, Pod};
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

/// Everything one decode produced.
type Decoded = (
    Vec<Result<Value, Malformed>>,
    Result<ListMeta, ListDecodeError>,
);

/// Decodes `doc` fed in chunks whose sizes cycle through `sizes`, checking the memory bound
/// after every chunk.
fn decode_chunked(doc: &[u8], sizes: &[usize], max: usize) -> Decoded {
    let mut dec = ListDecoder::with_max_item_bytes(max);
    let mut items = Vec::new();
    let mut rest = doc;
    let mut k = 0;
    while !rest.is_empty() {
        let n = sizes.get(k % sizes.len().max(1)).copied().unwrap_or(1);
        let n = n.clamp(1, rest.len());
        k += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let fed = dec.feed(chunk, &mut |item| {
            items.push(item);
            true
        });
        assert!(
            dec.held() <= max.max(MAX_KEY_BYTES),
            "holds {} bytes, limit {max}",
            dec.held()
        );
        if let Err(e) = fed {
            // The decoder is poisoned: the same error again.
            assert_eq!(dec.feed(b" ", &mut |_| true), Err(e.clone()));
            return (items, Err(e));
        }
    }
    (items, dec.finish())
}

/// Decodes `doc` in one chunk.
fn decode_whole(doc: &[u8], max: usize) -> Decoded {
    let mut items = Vec::new();
    let meta = decode_list(doc, max, |item| {
        items.push(item);
        true
    });
    (items, meta)
}

/// Checks a decode of a valid list document against serde_json's parse of the whole of it.
fn check_against_serde(doc: &[u8], decoded: &Decoded) {
    let whole: Value = serde_json::from_slice(doc).expect("the document is valid JSON");
    let expected: Vec<Value> = match &whole["items"] {
        Value::Array(items) => items.clone(),
        _ => Vec::new(),
    };
    let (items, meta) = decoded;
    assert_eq!(items.len(), expected.len(), "item count");
    for (i, (got, want)) in items.iter().zip(&expected).enumerate() {
        if want.is_object() {
            assert_eq!(got.as_ref().ok(), Some(want), "item {i}");
        } else {
            let err = got.as_ref().expect_err("a non-object item is malformed");
            assert!(err.error.contains("not an object"), "{}", err.error);
        }
    }
    let text = |p: &str| {
        whole
            .pointer(p)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let meta = meta.as_ref().expect("the list decodes");
    assert_eq!(meta.resource_version, text("/metadata/resourceVersion"));
    assert_eq!(meta.continue_token, text("/metadata/continue"));
    assert_eq!(
        meta.kind.as_deref(),
        whole.get("kind").and_then(Value::as_str)
    );
    assert_eq!(meta.items, expected.len() as u64);
}

/// The `.json` files under `tests/fixtures/<dir>`, sorted.
fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// A file of the crate, by path from its manifest directory.
fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect("fixture")
}

// --- Real list fixtures -----------------------------------------------------------------------

/// The real lists decode like serde_json's parse, in chunks of any size.
#[test]
fn real_lists_decode_like_serde_at_any_chunking() {
    // (file, kind, resourceVersion, items): the lists copied under tests/fixtures/lists/.
    let table: &[(&str, &str, Option<&str>, u64)] = &[
        ("nri-minikube-kubelet-pods.json", "PodList", None, 4),
        (
            "sbctl-kurl-events-kube-system.json",
            "EventList",
            Some("27215"),
            0,
        ),
        (
            "sbctl-kurl-events-velero.json",
            "EventList",
            Some("27217"),
            67,
        ),
        (
            "troubleshoot-minikube-events-76.json",
            "EventList",
            Some("954529"),
            76,
        ),
        (
            "troubleshoot-minikube-events-imagepull.json",
            "EventList",
            Some("986840"),
            17,
        ),
        (
            "troubleshoot-minikube-events-initcrash.json",
            "EventList",
            Some("982712"),
            17,
        ),
    ];
    assert_eq!(
        fixtures("lists").len(),
        table.len(),
        "every list fixture is in the table"
    );
    for &(file, kind, rv, count) in table {
        let doc = fixture(&format!("tests/fixtures/lists/{file}"));
        let whole = decode_whole(&doc, DEFAULT_MAX_ITEM_BYTES);
        check_against_serde(&doc, &whole);
        let meta = whole.1.as_ref().expect("decodes");
        assert_eq!(meta.kind.as_deref(), Some(kind), "{file}");
        assert_eq!(meta.resource_version.as_deref(), rv, "{file}");
        assert_eq!(meta.items, count, "{file}");
        for sizes in [&[1][..], &[2, 3, 5, 7, 11, 13], &[100], &[4096], &[65536]] {
            let chunked = decode_chunked(&doc, sizes, DEFAULT_MAX_ITEM_BYTES);
            assert_eq!(chunked, whole, "{file} in chunks of {sizes:?}");
        }
        // The items are real objects: they decode into their k8s-openapi types.
        for item in whole.0 {
            let item = item.expect("an object");
            let typed = match kind {
                "PodList" => decode::<Pod>(item).map(drop),
                _ => decode::<Event>(item).map(drop),
            };
            assert!(typed.is_ok(), "{file}: {typed:?}");
        }
        // The old buffered entry point agrees.
        let mut n = 0;
        let old_rv = for_each_list_item(&doc, |_| {
            n += 1;
            true
        })
        .expect("decodes");
        assert_eq!((old_rv.as_deref(), n), (rv, count), "{file}");
    }
}

/// A list of the single-object fixtures, `metadata` last, with a continue token.
#[test]
fn list_built_from_object_fixtures_with_metadata_last() {
    // A list assembled in the test from the single-object fixtures (themselves real items),
    // with `metadata` after `items` and a continue token.
    let mut objects = Vec::new();
    for dir in ["pods", "nodes", "events"] {
        for path in fixtures(dir) {
            let v: Value = serde_json::from_slice(&std::fs::read(&path).expect("read"))
                .expect("fixture is JSON");
            objects.push(v);
        }
    }
    let doc = serde_json::to_vec_pretty(&json!({
        "apiVersion": "v1",
        "items": objects,
        "kind": "List",
        "metadata": {"resourceVersion": "31337", "continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ=="},
    }))
    .expect("serializes");
    let decoded = decode_chunked(&doc, &[1000, 1, 333], DEFAULT_MAX_ITEM_BYTES);
    check_against_serde(&doc, &decoded);
    let (items, meta) = decoded;
    let meta = meta.expect("decodes");
    assert_eq!(meta.resource_version.as_deref(), Some("31337"));
    assert_eq!(
        meta.continue_token.as_deref(),
        Some("eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ==")
    );
    assert_eq!(items.len(), objects.len());
    for (got, want) in items.into_iter().zip(objects) {
        assert_eq!(got.expect("object"), want);
    }
    let node: Value = serde_json::from_slice(&fixture(
        "tests/fixtures/nodes/k9s-minikube-node-ready.json",
    ))
    .expect("json");
    assert!(decode::<Node>(node).is_ok());
}

/// An [`futures::AsyncRead`] that returns `data` in reads of the given sizes, then an error if
/// `fail` is set, else the end.
struct Chunked {
    /// The body.
    data: Vec<u8>,
    /// Bytes returned so far.
    pos: usize,
    /// Sizes of successive reads, cycled.
    sizes: Vec<usize>,
    /// Reads so far.
    reads: usize,
    /// Whether to fail at the end instead of returning end-of-file.
    fail: bool,
}

impl futures::AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pos == this.data.len() && this.fail {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            )));
        }
        let want = this.sizes[this.reads % this.sizes.len()];
        this.reads += 1;
        let n = want.min(buf.len()).min(this.data.len() - this.pos);
        buf[..n].copy_from_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(n))
    }
}

/// [`for_each_list_item_streamed`] over a reader: results, stopping, read errors.
#[test]
fn streamed_from_a_reader() {
    let doc = fixture("tests/fixtures/lists/troubleshoot-minikube-events-76.json");
    let reader = Chunked {
        data: doc.clone(),
        pos: 0,
        sizes: vec![1, 4096, 7, 100_000, 3],
        reads: 0,
        fail: false,
    };
    let mut items = Vec::new();
    let meta = futures::executor::block_on(for_each_list_item_streamed(
        reader,
        DEFAULT_MAX_ITEM_BYTES,
        |item| {
            items.push(item);
            true
        },
    ));
    check_against_serde(&doc, &(items, meta));

    // Stopping early.
    let reader = Chunked {
        data: doc.clone(),
        pos: 0,
        sizes: vec![512],
        reads: 0,
        fail: false,
    };
    let mut seen = 0;
    let stopped = futures::executor::block_on(for_each_list_item_streamed(
        reader,
        DEFAULT_MAX_ITEM_BYTES,
        |_| {
            seen += 1;
            seen < 3
        },
    ));
    assert_eq!(seen, 3);
    assert!(matches!(stopped, Err(ListDecodeError::Stopped { .. })));

    // A read error names the offset reached.
    let reader = Chunked {
        data: doc[..1000].to_vec(),
        pos: 0,
        sizes: vec![300],
        reads: 0,
        fail: true,
    };
    let err = futures::executor::block_on(for_each_list_item_streamed(reader, 1 << 20, |_| true))
        .expect_err("fails");
    assert_eq!(
        err,
        ListDecodeError::Read {
            offset: 1000,
            message: "connection reset by peer".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "reading the list response failed at byte 1000: connection reset by peer"
    );
}

// --- Broken bodies ----------------------------------------------------------------------------

/// The metadata (or error) of a body decoded in one chunk.
fn meta_of(doc: &[u8]) -> Result<ListMeta, ListDecodeError> {
    decode_whole(doc, DEFAULT_MAX_ITEM_BYTES).1
}

/// The offset and message of a [`ListDecodeError::Syntax`].
fn syntax_at(r: Result<ListMeta, ListDecodeError>) -> (u64, String) {
    match r {
        Err(ListDecodeError::Syntax { offset, message }) => (offset, message),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

/// A `Status` body is reported with its code, reason and message.
#[test]
fn status_body_is_an_error() {
    let doc = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (2)","reason":"Expired","code":410}"#;
    let err = meta_of(doc).expect_err("not a list");
    assert_eq!(
        err,
        ListDecodeError::Status {
            code: 410,
            reason: "Expired".into(),
            message: "too old resource version: 1 (2)".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "the API server answered with a Status instead of a list: code 410 Expired: too old resource version: 1 (2)"
    );
}

/// Bodies that are not list objects fail with the offending byte's offset.
#[test]
fn bodies_that_are_not_lists() {
    assert_eq!(meta_of(b""), Err(ListDecodeError::Empty));
    assert_eq!(meta_of(b" \r\n\t"), Err(ListDecodeError::Empty));
    assert_eq!(
        meta_of(br#"{"kind":"Pod","metadata":{"name":"p"}}"#),
        Err(ListDecodeError::NotAList {
            kind: Some("Pod".into())
        })
    );
    assert_eq!(
        meta_of(b"{}").map_err(|e| e.to_string()),
        Err("the response is not a list: it has no \"items\" (kind unknown)".into())
    );
    assert_eq!(
        syntax_at(meta_of(b"[1]")),
        (0, "expected a list object (`{`), found `[`".into())
    );
    assert_eq!(
        syntax_at(meta_of(b"\n<html>")),
        (1, "expected a list object (`{`), found `<`".into())
    );
    assert_eq!(
        syntax_at(meta_of(br#"{"items":{}}"#)),
        (
            9,
            "expected \"items\" to be an array or null, found `{`".into()
        )
    );
    assert_eq!(syntax_at(meta_of(br#"{"items":nul}"#)).0, 9);
    assert_eq!(
        syntax_at(meta_of(br#"{"items":[] } x"#)),
        (
            14,
            "expected the end of the body after the list object, found `x`".into()
        )
    );
    assert_eq!(
        syntax_at(meta_of(br#"{"items":[{},]}"#)),
        (13, "expected an item after `,`, found `]`".into())
    );
    assert_eq!(
        syntax_at(meta_of(br#"{"items":[{} {}]}"#)),
        (13, "expected `,` or `]` in \"items\", found `{`".into())
    );
    assert_eq!(
        syntax_at(meta_of(br#"{"items":[{"a":[1}]}"#)),
        (17, "`}` closes an array".into())
    );
    assert_eq!(
        syntax_at(meta_of(br#"{"metadata":{"a":1]}"#)),
        (18, "`]` closes an object".into())
    );
    assert_eq!(
        syntax_at(meta_of(br#"{"items":[] "kind":"L"}"#)).1,
        "expected `,` or `}`, found `\"`"
    );
    assert_eq!(
        syntax_at(meta_of(br#"{"items" []}"#)).1,
        "expected `:`, found `[`"
    );
    assert_eq!(
        syntax_at(meta_of(br#"{items:[]}"#)).1,
        "expected a key or `}`, found `i`"
    );
    assert_eq!(
        syntax_at(meta_of(br#"{"items":[],}"#)).1,
        "expected a key, found `}`"
    );
    let (offset, message) = syntax_at(meta_of(
        br#"{"metadata":{"resourceVersion":1,},"items":[]}"#,
    ));
    assert_eq!(offset, 12);
    assert!(
        message.starts_with("invalid value of a top-level key"),
        "{message}"
    );
    // `null` items is an empty list.
    assert_eq!(
        meta_of(br#"{"items":null,"metadata":{"resourceVersion":"3"}}"#),
        Ok(ListMeta {
            resource_version: Some("3".into()),
            ..ListMeta::default()
        })
    );
}

/// Every prefix of a list is reported as truncated, after the items complete in it.
#[test]
fn every_truncation_is_an_error() {
    let doc = br#" {"kind":"PodList","metadata":{"resourceVersion":"9","continue":"c\"\\"},"code":12,"x":[true,{"y":"\u00e9"}],"items":[{"a":"\"}]\\"},7,{"b":[null]}] } "#;
    let (full_items, full_meta) = decode_whole(doc, DEFAULT_MAX_ITEM_BYTES);
    assert!(full_meta.is_ok());
    let close = doc.len() - 2; // the closing `}`
    for cut in 0..doc.len() {
        let (items, meta) = decode_chunked(&doc[..cut], &[3, 1, 4, 1, 5], 1 << 20);
        assert_eq!(items[..], full_items[..items.len()], "cut at {cut}");
        if cut <= close {
            match meta {
                Err(ListDecodeError::Truncated { offset, .. }) => assert_eq!(offset, cut as u64),
                Err(ListDecodeError::Empty) => assert!(cut <= 1),
                other => panic!("cut at {cut}: {other:?}"),
            }
        } else {
            assert_eq!(meta, full_meta, "cut at {cut}");
        }
    }
    let err = meta_of(br#"{"items":[{"a":1},{"b":"#).expect_err("truncated");
    assert_eq!(
        err.to_string(),
        "the list response is truncated: it ends at byte 23, inside item 1 (from byte 18)"
    );
    let err = meta_of(br#"{"items":[{"a":1}"#).expect_err("truncated");
    assert_eq!(
        err.to_string(),
        "the list response is truncated: it ends at byte 17, inside \"items\", after 1 items"
    );
    let err = meta_of(br#"{"metadata":{"resourceVersion":"#).expect_err("truncated");
    assert_eq!(
        err.to_string(),
        "the list response is truncated: it ends at byte 31, inside \"metadata\" (from byte 12)"
    );
}

// --- Items ------------------------------------------------------------------------------------

/// Non-object and invalid items are malformed, with what identity is readable; the rest decode.
#[test]
fn malformed_items_are_reported_and_skipped() {
    let doc = br#"{"items":[1,{"a":1},"s",{"kind":"Pod","metadata":{"namespace":"n","name":"p"},"spec":},[],{"b":2},null,{"c":"\q"}],"kind":"PodList"}"#;
    for sizes in [&[doc.len()][..], &[1], &[2, 5]] {
        let (items, meta) = decode_chunked(doc, sizes, 1 << 20);
        assert_eq!(meta.expect("the list decodes").items, 8);
        assert_eq!(items.len(), 8);
        let err = |i: usize| items[i].as_ref().expect_err("malformed");
        assert_eq!(
            err(0).error,
            "list item 0 at byte 10 is not an object but a number"
        );
        assert_eq!(items[1], Ok(json!({"a": 1})));
        assert_eq!(
            err(2).error,
            "list item 2 at byte 20 is not an object but a string"
        );
        assert_eq!(
            err(3).identity,
            Identity {
                kind: Some("Pod".into()),
                namespace: Some("n".into()),
                name: Some("p".into())
            }
        );
        assert!(
            err(3)
                .error
                .starts_with("list item 3 at byte 24 is not valid JSON: "),
            "{}",
            err(3).error
        );
        assert!(err(4).error.ends_with("an array"));
        assert_eq!(items[5], Ok(json!({"b": 2})));
        assert!(err(6).error.ends_with("not an object but null"));
        assert!(err(7).error.contains("is not valid JSON"));
    }
}

/// Items over the limit are malformed (identity from their first bytes) and skipped.
#[test]
fn oversized_items_are_skipped_within_the_limit() {
    let big = "x".repeat(5000);
    let doc = format!(
        r#"{{"items":[{{"kind":"Pod","metadata":{{"name":"big","namespace":"ns"}},"spec":"{big}"}},{{"a":1}},{{"kind":"Pod","metadata":{{"name":"big2"}},"data":[{big:?}]}}],"metadata":{{"resourceVersion":"5"}}}}"#
    );
    for sizes in [&[doc.len()][..], &[1], &[7, 64, 1000], &[50]] {
        let (items, meta) = decode_chunked(doc.as_bytes(), sizes, 100);
        assert_eq!(
            meta.expect("decodes").resource_version.as_deref(),
            Some("5")
        );
        assert_eq!(items.len(), 3);
        let first = items[0].as_ref().expect_err("too large");
        assert_eq!(first.identity.name.as_deref(), Some("big"));
        assert_eq!(first.identity.namespace.as_deref(), Some("ns"));
        assert_eq!(first.identity.kind.as_deref(), Some("Pod"));
        assert_eq!(
            first.error,
            "list item 0 at byte 10 is 5067 bytes, over the limit of 100; skipped"
        );
        assert_eq!(items[1], Ok(json!({"a": 1})));
        let third = items[2].as_ref().expect_err("too large");
        assert_eq!(third.identity.name.as_deref(), Some("big2"));
        assert!(third.error.contains("over the limit of 100"));
    }
    // An item of exactly the limit is fine.
    let doc = br#"{"items":[{"a":"12345"}]}"#;
    let (items, _) = decode_chunked(doc, &[1], 13);
    assert_eq!(items, vec![Ok(json!({"a": "12345"}))]);
    let (items, _) = decode_chunked(doc, &[1], 12);
    assert!(items[0].is_err());
    // Metadata over the limit fails the list.
    let doc = br#"{"metadata":{"resourceVersion":"123456789"},"items":[]}"#;
    assert_eq!(
        decode_chunked(doc, &[4], 16).1,
        Err(ListDecodeError::MetadataTooLarge {
            offset: 12,
            limit: 16
        })
    );
}

/// A 1 MiB item fed in small chunks is never held beyond the limit.
#[test]
fn memory_stays_bounded_on_a_large_item() {
    let max = 64 << 10;
    let big = "y".repeat(1 << 20);
    let doc = format!(r#"{{"items":[{{"s":"{big}"}},{{"n":1}}]}}"#);
    let (items, meta) = decode_chunked(doc.as_bytes(), &[4096, 1, 333], max);
    assert!(meta.is_ok());
    assert!(items[0].is_err());
    assert_eq!(items[1], Ok(json!({"n": 1})));
}

/// The callback's `false` stops the decoder for good.
#[test]
fn stopping_early() {
    let doc = br#"{"items":[{"a":1},{"a":2},{"a":3}]}"#;
    let mut dec = ListDecoder::new();
    let mut seen = Vec::new();
    let fed = dec.feed(doc, &mut |item| {
        seen.push(item);
        seen.len() < 2
    });
    assert_eq!(fed, Ok(Feed::Stopped));
    assert_eq!(seen.len(), 2);
    assert_eq!(dec.offset(), 25);
    assert_eq!(dec.feed(b"garbage", &mut |_| true), Ok(Feed::Stopped));
    assert_eq!(dec.finish(), Err(ListDecodeError::Stopped { offset: 25 }));
    assert!(for_each_list_item(doc, |_| false).is_err());
}

/// Escaped keys are recognized, long unknown keys skipped.
#[test]
fn keys_escaped_long_and_in_any_order() {
    let long = "k".repeat(1000);
    let doc = format!(
        r#"{{"{long}":{{"items":[1]}},"meta\u0064ata":{{"continue":"next","resourceVersion":""}},"\u0069tems":[{{"a":1}}],"kind":"PodList","apiVersion":"v1"}}"#
    );
    for sizes in [&[doc.len()][..], &[1], &[255, 2]] {
        let (items, meta) = decode_chunked(doc.as_bytes(), sizes, 1 << 20);
        assert_eq!(items, vec![Ok(json!({"a": 1}))]);
        assert_eq!(
            meta,
            Ok(ListMeta {
                resource_version: None,
                continue_token: Some("next".into()),
                kind: Some("PodList".into()),
                items: 1
            })
        );
    }
    let (offset, message) = syntax_at(meta_of(br#"{"ite\ms":[]}"#));
    assert_eq!(offset, 9);
    assert!(message.starts_with("invalid key"), "{message}");
}

/// Nesting deeper than the checked depth and serde_json's limit does not break the list.
#[test]
fn deep_nesting_is_bounded() {
    // Deeper than serde_json's recursion limit: the item is malformed, the next one is read.
    let depth = 1000;
    let doc = format!(
        r#"{{"items":[{{"d":{}{}}},{{"e":1}}],"x":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth),
        "{\"a\":".repeat(depth),
        "}".repeat(depth)
    );
    let (items, meta) = decode_chunked(doc.as_bytes(), &[1, 97], 1 << 20);
    assert!(meta.is_ok(), "{meta:?}");
    assert!(items[0].is_err());
    assert_eq!(items[1], Ok(json!({"e": 1})));
}

// --- Generated lists (property tests) ---------------------------------------------------------

/// A JSON value with its members in a chosen order (and possibly repeated keys).
#[derive(Debug, Clone)]
enum J {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A finite float.
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<J>),
    /// An object, members in this order.
    Obj(Vec<(String, J)>),
}

/// Strings full of what a scanner can get wrong: quotes, backslashes, brackets, control
/// characters, multi-byte UTF-8.
fn tricky_string() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        6 => proptest::char::range('a', 'z'),
        1 => Just('"'),
        1 => Just('\\'),
        1 => Just('{'),
        1 => Just('}'),
        1 => Just('['),
        1 => Just(']'),
        1 => Just(','),
        1 => Just(':'),
        1 => Just('/'),
        1 => Just(' '),
        1 => Just('\n'),
        1 => Just('\u{1}'),
        1 => Just('é'),
        1 => Just('中'),
        1 => Just('😀'),
        1 => any::<char>(),
    ];
    vec(ch, 0..10).prop_map(|v| v.into_iter().collect())
}

/// Any JSON value, nested up to 4 levels.
fn json_value() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(J::Float),
        tricky_string().prop_map(J::Str),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(J::Arr),
            vec((tricky_string(), inner), 0..5).prop_map(J::Obj),
        ]
    })
}

/// Mostly objects, sometimes another value (which must come out as malformed).
fn list_item() -> impl Strategy<Value = J> {
    prop_oneof![
        8 => vec((tricky_string(), json_value()), 0..6).prop_map(J::Obj),
        1 => json_value(),
    ]
}

/// Renders [`J`] values with pseudo-random whitespace and escaping, recording where items are.
struct Render {
    /// The bytes rendered so far.
    out: Vec<u8>,
    /// The PRNG state.
    rng: u64,
}

impl Render {
    /// A renderer whose choices follow `seed`.
    fn new(seed: u64) -> Self {
        Self {
            out: Vec::new(),
            rng: seed,
        }
    }

    /// SplitMix64.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Appends `s`.
    fn push(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    /// Appends random (often no) whitespace.
    fn ws(&mut self) {
        let ws = match self.next() % 10 {
            0 => " ",
            1 => "\n  ",
            2 => "\t",
            3 => "\r\n    ",
            _ => "",
        };
        self.push(ws);
    }

    /// Appends `s` as a JSON string, each character escaped or not at random.
    fn string(&mut self, s: &str) {
        self.push("\"");
        for c in s.chars() {
            let r = self.next() % 6;
            match c {
                '"' if r < 3 => self.push("\\\""),
                '\\' if r < 3 => self.push("\\\\"),
                '/' if r < 2 => self.push("\\/"),
                '\n' if r < 3 => self.push("\\n"),
                '"' | '\\' => self.unicode_escape(c),
                c if (c as u32) < 0x20 => self.unicode_escape(c),
                c if r == 0 => self.unicode_escape(c),
                c => {
                    let mut b = [0; 4];
                    self.push(c.encode_utf8(&mut b));
                }
            }
        }
        self.push("\"");
    }

    /// `\uXXXX` (a surrogate pair beyond the BMP), in random hex case.
    fn unicode_escape(&mut self, c: char) {
        let mut units = [0; 2];
        for unit in c.encode_utf16(&mut units) {
            let text = if self.next().is_multiple_of(2) {
                format!("\\u{unit:04x}")
            } else {
                format!("\\u{unit:04X}")
            };
            self.push(&text);
        }
    }

    /// Appends a value.
    fn value(&mut self, v: &J) {
        match v {
            J::Null => self.push("null"),
            J::Bool(b) => self.push(if *b { "true" } else { "false" }),
            J::Int(i) => self.push(&i.to_string()),
            J::Float(f) => {
                let n = serde_json::Number::from_f64(*f).expect("finite");
                self.push(&n.to_string());
            }
            J::Str(s) => self.string(s),
            J::Arr(items) => {
                self.push("[");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.ws();
                        self.push(",");
                    }
                    self.ws();
                    self.value(item);
                }
                self.ws();
                self.push("]");
            }
            J::Obj(members) => {
                self.push("{");
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        self.ws();
                        self.push(",");
                    }
                    self.ws();
                    self.string(k);
                    self.ws();
                    self.push(":");
                    self.ws();
                    self.value(v);
                }
                self.ws();
                self.push("}");
            }
        }
    }

    /// Renders an `items` array of pre-rendered or generated items; returns their spans.
    fn items<'a>(&mut self, items: impl IntoIterator<Item = Item<'a>>) -> Vec<Range<usize>> {
        let mut spans = Vec::new();
        self.push("[");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.ws();
                self.push(",");
            }
            self.ws();
            let start = self.out.len();
            match item {
                Item::Value(v) => self.value(v),
                Item::Raw(raw) => self.out.extend_from_slice(raw),
            }
            spans.push(start..self.out.len());
        }
        self.ws();
        self.push("]");
        spans
    }
}

/// An item to render.
enum Item<'a> {
    /// A generated value.
    Value(&'a J),
    /// Bytes as they are.
    Raw(&'a [u8]),
}

/// A generated list document.
#[derive(Debug, Clone)]
struct Doc {
    /// `kind`.
    kind: Option<String>,
    /// `metadata.resourceVersion`.
    resource_version: Option<String>,
    /// `metadata.continue`.
    continue_token: Option<String>,
    /// `metadata.remainingItemCount`.
    remaining: Option<i64>,
    /// `None`: `"items": null`.
    items: Option<Vec<J>>,
    /// Other top-level members.
    extra: Vec<(String, J)>,
    /// Seed of the key order, whitespace and escapes.
    seed: u64,
}

/// Any list document.
fn doc() -> impl Strategy<Value = Doc> {
    let known = |k: &String| {
        !matches!(
            k.as_str(),
            "items" | "metadata" | "kind" | "code" | "reason" | "message"
        )
    };
    (
        proptest::option::weighted(0.9, tricky_string()),
        proptest::option::weighted(0.9, tricky_string()),
        proptest::option::of(tricky_string()),
        proptest::option::of(any::<i64>()),
        proptest::option::weighted(0.9, vec(list_item(), 0..8)),
        vec(
            (
                tricky_string().prop_filter("not a known key", known),
                json_value(),
            ),
            0..3,
        ),
        any::<u64>(),
    )
        .prop_map(
            |(kind, resource_version, continue_token, remaining, items, extra, seed)| Doc {
                kind,
                resource_version,
                continue_token,
                remaining,
                items,
                extra,
                seed,
            },
        )
}

impl Doc {
    /// The document's bytes, its members in a random order.
    fn render(&self) -> Vec<u8> {
        let mut meta = Vec::new();
        if let Some(rv) = &self.resource_version {
            meta.push(("resourceVersion".to_string(), J::Str(rv.clone())));
        }
        if let Some(c) = &self.continue_token {
            meta.push(("continue".to_string(), J::Str(c.clone())));
        }
        if let Some(n) = self.remaining {
            meta.push(("remainingItemCount".to_string(), J::Int(n)));
        }
        let mut members: Vec<(String, Option<J>)> = vec![
            ("apiVersion".into(), Some(J::Str("v1".into()))),
            ("metadata".into(), Some(J::Obj(meta))),
            // `None`: the items array, rendered in place.
            ("items".into(), None),
        ];
        if let Some(kind) = &self.kind {
            members.push(("kind".into(), Some(J::Str(kind.clone()))));
        }
        members.extend(self.extra.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
        let mut r = Render::new(self.seed);
        for i in (1..members.len()).rev() {
            let j = (r.next() % (i as u64 + 1)) as usize;
            members.swap(i, j);
        }
        r.ws();
        r.push("{");
        for (i, (k, v)) in members.iter().enumerate() {
            if i > 0 {
                r.ws();
                r.push(",");
            }
            r.ws();
            r.string(k);
            r.ws();
            r.push(":");
            r.ws();
            match (v, &self.items) {
                (Some(v), _) => r.value(v),
                (None, Some(items)) => {
                    r.items(items.iter().map(Item::Value));
                }
                (None, None) => r.push("null"),
            }
        }
        r.ws();
        r.push("}");
        r.ws();
        r.out
    }
}

/// Items that are broken but keep their brackets balanced, so the list goes on after them.
const BAD_ITEMS: &[&[u8]] = &[
    br#"{"a":1,}"#,
    br#"{"a" 1}"#,
    br#"{"kind":"Pod","metadata":{"name":"x","namespace":"y"},"spec":}"#,
    br#"{"a":tru}"#,
    b"tru",
    b"-",
    br#"{"a":"\x"}"#,
    br#"{"s":"\u12"}"#,
    b"{\"a\":\"x\ny\"}",
    b"{\"a\":\"\xff\xfe\"}",
    br#"["x" "y"]"#,
    br#"{"kind":"Node","metadata":{"name":"n1"},"status":{"x":[1,2,]}}"#,
    br#"{"a":{"b":[{"c":"]}" "d"}]}}"#,
];

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Generated lists decode like serde_json's parse of the whole body, whatever the chunking.
    #[test]
    fn generated_lists_match_serde(doc in doc(), sizes in vec(1usize..64, 1..20)) {
        let bytes = doc.render();
        let whole = decode_whole(&bytes, DEFAULT_MAX_ITEM_BYTES);
        check_against_serde(&bytes, &whole);
        let chunked = decode_chunked(&bytes, &sizes, DEFAULT_MAX_ITEM_BYTES);
        prop_assert_eq!(&chunked, &whole);
        let bytewise = decode_chunked(&bytes, &[1], DEFAULT_MAX_ITEM_BYTES);
        prop_assert_eq!(&bytewise, &whole);
    }

    /// Broken and oversized items are reported in place and the others decode; the results
    /// do not depend on the chunking.
    #[test]
    fn broken_and_oversized_items(
        items in vec(prop_oneof![
            3 => list_item().prop_map(Ok),
            1 => (0..BAD_ITEMS.len()).prop_map(Err),
        ], 0..10),
        max in 30usize..400,
        seed in any::<u64>(),
        sizes in vec(1usize..50, 1..10),
    ) {
        let mut r = Render::new(seed);
        r.push(r#"{"kind":"PodList","metadata":{"resourceVersion":"42"},"items":"#);
        let spans = r.items(items.iter().map(|item| match item {
            Ok(v) => Item::Value(v),
            Err(i) => Item::Raw(BAD_ITEMS[*i]),
        }));
        r.push("}");
        let bytes = r.out;

        let (decoded, meta) = decode_chunked(&bytes, &sizes, max);
        prop_assert_eq!(meta.as_ref().map(|m| m.resource_version.as_deref()), Ok(Some("42")));
        prop_assert_eq!(decoded.len(), items.len());
        for ((got, item), span) in decoded.iter().zip(&items).zip(&spans) {
            let text = &bytes[span.clone()];
            if text.len() > max {
                let err = got.as_ref().expect_err("oversized");
                prop_assert!(err.error.contains("over the limit"), "{}", err.error);
                continue;
            }
            match item {
                Ok(_) => {
                    let want: Value = serde_json::from_slice(text).expect("valid item");
                    if want.is_object() {
                        prop_assert_eq!(got.as_ref().ok(), Some(&want));
                    } else {
                        prop_assert!(got.is_err());
                    }
                }
                Err(i) => {
                    let err = got.as_ref().expect_err("broken");
                    if *i == 2 {
                        prop_assert_eq!(err.identity.name.as_deref(), Some("x"));
                        prop_assert_eq!(err.identity.namespace.as_deref(), Some("y"));
                    }
                }
            }
        }
        prop_assert_eq!(decode_whole(&bytes, max), (decoded, meta));
    }
}

// --- Throughput -------------------------------------------------------------------------------
