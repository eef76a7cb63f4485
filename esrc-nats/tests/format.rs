//! The stored format, as other NATS tools see it: what each message carries (and does
//! not), the events of the earlier format still read and appended to, and a later format
//! refused by name. The crate README documents the format these tests pin down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::StreamMessage};
use esrc_core::{
    DecodeError, Error, Expected, Metadata, NewEvent, Position, Publish, ReplayOne, Timestamp,
    Truncate, Version,
};
use esrc_nats::NatsStore;
use futures::StreamExt;
use uuid::Uuid;

fn event(n: u64) -> NewEvent {
    NewEvent::from_payload(1, format!(r#"{{"n":{n}}}"#))
}

/// The stored message at `sequence`, headers and all.
async fn stored(store: &NatsStore, sequence: u64) -> StreamMessage {
    let context = jetstream::new(store.client().clone());
    let stream = context.get_stream(store.stream_name()).await.unwrap();
    stream.get_raw_message(sequence).await.unwrap()
}

/// The names of `headers`, sorted.
fn names(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(name, _)| AsRef::<str>::as_ref(name).to_owned())
        .collect();
    names.sort();
    names
}

fn value<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).map(|value| value.as_str()).unwrap_or("")
}

/// The head format 3 puts before a payload, for an event without optional fields: the
/// format, the flags (32 when the id follows), then version, schema version and time as
/// varints.
fn plain_head(event_id: Option<Uuid>, version: u8, schema: u8, time: i64) -> Vec<u8> {
    let mut head = vec![0xE5, 3, 0];
    if let Some(event_id) = event_id {
        head[2] = 32;
        head.extend_from_slice(event_id.as_bytes());
    }
    head.extend_from_slice(&[version, schema]);
    let mut zigzag = ((time << 1) ^ (time >> 63)) as u64;
    while zigzag >= 0x80 {
        head.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    head.push(zigzag as u8);
    head
}

#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn an_event_carries_its_metadata_in_front_of_its_payload_and_only_the_servers_headers() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let id = Uuid::now_v7();
    let plain = event(1).with_timestamp(Timestamp::from_micros(1_700_000_000_123_457));
    let one = store
        .publish("Thing", id, Expected::NoStream, vec![plain.clone()])
        .await
        .unwrap();
    let correlation = Uuid::now_v7();
    let rich = NewEvent::from_payload(3, r#"{"n":2}"#).with_metadata(
        Metadata::new()
            .with_correlation_id(correlation)
            .with("user", "alice"),
    );
    let two = store
        .publish(
            "Thing",
            id,
            Expected::Exact(Version(1)),
            vec![rich.clone(), event(3)],
        )
        .await
        .unwrap();
    let first = stored(&store, one.position.get()).await;
    let last = stored(&store, two.position.get()).await;
    let middle = stored(&store, two.position.get() - 1).await;
    let read: Vec<_> = store.replay_one("Thing", id, Version::ZERO).collect().await;
    store.destroy().await.unwrap();

    assert_eq!(
        first.subject.as_str(),
        format!("{}.Thing.{id}", store.prefix())
    );
    let mut expected = plain_head(None, 1, 1, 1_700_000_000_123_457);
    expected.extend_from_slice(br#"{"n":1}"#);
    assert_eq!(
        first.payload.as_ref(),
        expected.as_slice(),
        "the head (format, flags, version, schema, time), then the JSON"
    );
    assert_eq!(
        names(&first.headers),
        ["Nats-Expected-Last-Subject-Sequence", "Nats-Msg-Id"],
        "a one-event append: the server's deduplication and concurrency check, nothing else"
    );
    assert_eq!(
        value(&first.headers, "Nats-Msg-Id"),
        plain.event_id.to_string()
    );

    assert_eq!(
        names(&middle.headers),
        [
            "Nats-Batch-Id",
            "Nats-Batch-Sequence",
            "Nats-Expected-Last-Subject-Sequence",
            "Nats-Msg-Id",
        ],
        "metadata travels in the payload"
    );
    assert_eq!(
        &middle.payload[..3],
        &[0xE5, 3, 1 | 4 | 64],
        "a correlation id, key/values, the time counted from the id's millisecond"
    );
    assert_eq!(&middle.payload[3..5], &[2, 3], "version 2, schema 3");
    assert!(middle.payload.ends_with(br#"{"n":2}"#));
    assert_eq!(
        names(&last.headers),
        [
            "Nats-Batch-Commit",
            "Nats-Batch-Id",
            "Nats-Batch-Sequence",
            "Nats-Msg-Id"
        ],
        "the server's batch headers tell which append an event came from"
    );
    assert_eq!(value(&last.headers, "Nats-Batch-Sequence"), "2");

    let read: Vec<_> = read.into_iter().map(Result::unwrap).collect();
    assert_eq!(read.len(), 3);
    assert_eq!(read[0].timestamp, plain.timestamp);
    assert_eq!(read[0].payload.as_ref(), br#"{"n":1}"#);
    assert_eq!(
        (read[1].event_id, read[1].version, read[1].schema_version),
        (rich.event_id, Version(2), 3)
    );
    assert_eq!(read[1].metadata, rich.metadata);
    assert_eq!(read[1].payload.as_ref(), br#"{"n":2}"#);
}

#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn a_truncation_marker_holds_the_version_in_the_esrc_header() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let id = Uuid::now_v7();
    store
        .publish("Thing", id, Expected::NoStream, vec![event(1), event(2)])
        .await
        .unwrap();
    store.truncate("Thing", id, Version(3)).await.unwrap();
    let appended = store
        .publish("Thing", id, Expected::Exact(Version(2)), vec![event(3)])
        .await
        .unwrap();
    let marker = stored(&store, appended.position.get() - 1).await;
    store.destroy().await.unwrap();
    assert_eq!(value(&marker.headers, "Esrc-Marker"), "truncated");
    assert_eq!(value(&marker.headers, "Esrc"), "2 2");
    assert_eq!(appended.version, Version(3));
}

/// Sends the two-event append of `ids` again (as a client that lost its acknowledgement
/// would), checks that it reports the original outcome, appends a third event, and
/// returns the stream as read back; the store is destroyed.
async fn retried_then_appended(
    store: &NatsStore,
    id: Uuid,
    ids: [Uuid; 2],
) -> Vec<esrc_core::Envelope> {
    let old = ids.map(|id| event(0).with_event_id(id)).to_vec();
    let retried = store.publish("Thing", id, Expected::NoStream, old).await;
    let appended = store
        .publish("Thing", id, Expected::Exact(Version(2)), vec![event(3)])
        .await;
    let read: Vec<_> = store.replay_one("Thing", id, Version::ZERO).collect().await;
    store.destroy().await.unwrap();

    assert_eq!(retried.unwrap().version, Version(2), "the original outcome");
    assert_eq!(appended.unwrap().version, Version(3));
    let read: Vec<_> = read.into_iter().map(Result::unwrap).collect();
    assert_eq!(read.len(), 3);
    read
}

/// Headers of format 1, written before formats had numbers.
fn format_1(event_id: Uuid, version: u64, batch: Uuid, size: usize) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", event_id.to_string().as_str());
    headers.insert("Esrc-Version", version.to_string().as_str());
    headers.insert("Esrc-Schema", "2");
    headers.insert("Esrc-Time", "1700000000000001");
    headers.insert("Esrc-Correlation-Id", batch.to_string().as_str());
    headers.insert("Esrc-Meta", r#"{"k":"v"}"#);
    headers.insert("Esrc-Batch", batch.to_string().as_str());
    headers.insert("Esrc-Batch-Size", size.to_string().as_str());
    headers
}

#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn events_of_format_1_are_read_appended_to_and_recognised_on_retry() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let context = jetstream::new(store.client().clone());
    let id = Uuid::now_v7();
    let subject = format!("{}.Thing.{id}", store.prefix());
    let (ids, batch) = ([Uuid::new_v4(), Uuid::new_v4()], Uuid::new_v4());
    for (version, event_id) in (1..).zip(ids) {
        context
            .publish_with_headers(
                subject.clone(),
                format_1(event_id, version, batch, 2),
                format!(r#"{{"n":{version}}}"#).into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let read = retried_then_appended(&store, id, ids).await;
    let first = &read[0];
    assert_eq!(
        (first.event_id, first.version, first.schema_version),
        (ids[0], Version(1), 2)
    );
    assert_eq!(
        first.timestamp,
        Timestamp::from_micros(1_700_000_000_000_001)
    );
    assert_eq!(first.metadata.correlation_id, Some(batch));
    assert_eq!(first.metadata.values["k"], "v");
    assert_eq!(first.payload.as_ref(), br#"{"n":1}"#);
    assert_eq!(read[2].version, Version(3));
}

/// Headers of format 2, written by esrc-nats before format 3.
fn format_2(event_id: Uuid, version: u64, correlation: Uuid) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", event_id.to_string().as_str());
    headers.insert("Esrc", format!("2 {version} 2 1700000000000001").as_str());
    headers.insert("Esrc-Correlation-Id", correlation.to_string().as_str());
    headers.insert("Esrc-Meta", r#"{"k":"v"}"#);
    headers.insert("Esrc-Type", "Counted");
    headers
}

/// Events of format 2, stored as an atomic batch as esrc-nats stored them, are read (all
/// their fields), a retry of their append is recognised, and format-3 events follow them.
#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn events_of_format_2_are_read_appended_to_and_recognised_on_retry() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let client = store.client().clone();
    let id = Uuid::now_v7();
    let subject = format!("{}.Thing.{id}", store.prefix());
    let (ids, correlation, batch) = (
        [Uuid::new_v4(), Uuid::new_v4()],
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    for (version, event_id) in (1..).zip(ids) {
        let mut headers = format_2(event_id, version, correlation);
        headers.insert("Nats-Batch-Id", batch.to_string().as_str());
        headers.insert("Nats-Batch-Sequence", version.to_string().as_str());
        if version == 1 {
            headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
        } else {
            headers.insert("Nats-Batch-Commit", "1");
        }
        let payload = format!(r#"{{"n":{version}}}"#);
        client
            .request_with_headers(subject.clone(), headers, payload.into())
            .await
            .unwrap();
    }
    let read = retried_then_appended(&store, id, ids).await;
    let first = &read[0];
    assert_eq!(
        (first.event_id, first.version, first.schema_version),
        (ids[0], Version(1), 2)
    );
    assert_eq!(
        first.timestamp,
        Timestamp::from_micros(1_700_000_000_000_001)
    );
    assert_eq!(first.metadata.correlation_id, Some(correlation));
    assert_eq!(first.metadata.values["k"], "v");
    assert_eq!(first.event_type, "Counted");
    assert_eq!(first.payload.as_ref(), br#"{"n":1}"#);
    assert_eq!(
        (read[2].version, read[2].payload.as_ref()),
        (Version(3), br#"{"n":3}"#.as_slice())
    );
}

#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn a_later_format_or_a_broken_esrc_header_is_a_typed_error_naming_it() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let context = jetstream::new(store.client().clone());
    let cases = [
        ("4 1 1 1700000000000000", "format 4"),
        ("3 1 1 1700000000000000", "`Esrc` is invalid"),
        ("2 1 1", "`Esrc` is invalid: `2 1 1`"),
        ("2 one 1 1700000000000000", "`Esrc` is invalid"),
        ("2 1 1 1700000000000000 extra", "`Esrc` is invalid"),
        ("", "`Esrc` is invalid"),
    ];
    for (stamp, message) in cases {
        let id = Uuid::now_v7();
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", Uuid::new_v4().to_string().as_str());
        headers.insert("Esrc", stamp);
        context
            .publish_with_headers(
                format!("{}.Thing.{id}", store.prefix()),
                headers,
                "{}".into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        let read: Vec<_> = store.replay_one("Thing", id, Version::ZERO).collect().await;
        assert_eq!(read.len(), 1, "{stamp:?}");
        let error = read[0].as_ref().expect_err(stamp);
        assert!(
            matches!(
                error,
                Error::Format { category, position, source: DecodeError::Envelope(_) | DecodeError::Field { .. }, .. }
                    if category == "Thing" && *position > Position::ZERO
            ),
            "{stamp:?}: {error:?}"
        );
        assert!(
            esrc_core::Chain(error).to_string().contains(message),
            "{stamp:?}: {error}"
        );
        // An append after it fails the same way, and stores nothing.
        let append = store
            .publish("Thing", id, Expected::Exact(Version(1)), vec![event(2)])
            .await;
        assert!(
            matches!(append, Err(Error::Format { .. })),
            "{stamp:?}: {append:?}"
        );
    }
    store.destroy().await.unwrap();
}

/// A payload head of a later format, cut short or with a field this crate cannot hold is
/// a typed error naming it, and an append after it stores nothing (unless the head's
/// version is readable: an event without an id still counts in its stream).
#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn a_later_or_broken_payload_head_is_a_typed_error_naming_it() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let context = jetstream::new(store.client().clone());
    let mut later = plain_head(Some(Uuid::new_v4()), 1, 1, 0);
    later[1] = 4;
    let cut = plain_head(Some(Uuid::new_v4()), 1, 1, 0)[..10].to_vec();
    let mut unknown = plain_head(Some(Uuid::new_v4()), 1, 1, 0);
    unknown[2] = 0x80;
    // Flags 16 (tags) and 32 (the id): one tag of 9 bytes without a colon.
    let mut tag = plain_head(Some(Uuid::new_v4()), 1, 1, 0);
    tag[2] = 16 | 32;
    tag.extend_from_slice(b"\x01\x09no-colon!");
    // Whether the head's version can still be read (an append after it goes on).
    let cases = [
        (later, "format 4", false),
        (cut, "`event id` is missing", false),
        (unknown, "`flags` is invalid: `0x80`", false),
        (tag, "`tags` is invalid: `no-colon!`", false),
        // No id in the head, and no `Nats-Msg-Id` either.
        (plain_head(None, 1, 1, 0), "`Nats-Msg-Id` is missing", true),
    ];
    for (payload, message, versioned) in cases {
        let id = Uuid::now_v7();
        let subject = format!("{}.Thing.{id}", store.prefix());
        let ack = context.publish(subject, payload.into());
        ack.await.unwrap().await.unwrap();
        let read: Vec<_> = store.replay_one("Thing", id, Version::ZERO).collect().await;
        assert_eq!(read.len(), 1, "{message}");
        let error = read[0].as_ref().expect_err(message);
        assert!(
            matches!(error, Error::Format { category, .. } if category == "Thing"),
            "{message}: {error:?}"
        );
        assert!(
            esrc_core::Chain(error).to_string().contains(message),
            "{message}: {error}"
        );
        let append = store
            .publish("Thing", id, Expected::Exact(Version(1)), vec![event(2)])
            .await;
        if versioned {
            assert_eq!(append.unwrap().version, Version(2), "{message}");
        } else {
            assert!(
                matches!(append, Err(Error::Format { .. })),
                "{message}: {append:?}"
            );
        }
    }
    store.destroy().await.unwrap();
}

/// A tagged event carries its type and tags in its payload's head, and each tag is an empty
/// marker right after it, pointing back at it; a condition's check rides on a marker.
#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn a_tagged_event_carries_its_type_and_tags_and_a_marker_per_tag() {
    use esrc_core::{Condition, Decide, Item, Query, Tag, Write};
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let id = Uuid::now_v7();
    let tags = [
        Tag::new("student:s1").unwrap(),
        Tag::new("course:c.1").unwrap(),
    ];
    let enrolled = event(1).with_type("Enrolled").with_tags(tags.clone());
    let condition = Condition::new(Query::new().or(Item::new().tagged(tags[0].clone())));
    let appended = store
        .append_if(
            vec![Write::new("Course", id, vec![enrolled])],
            Some(condition),
        )
        .await
        .unwrap();
    let at = appended[0].position.get();
    let (event, course, student) = (
        stored(&store, at).await,
        stored(&store, at + 1).await,
        stored(&store, at + 2).await,
    );
    store.destroy().await.unwrap();

    assert_eq!(
        event.payload[2],
        8 | 16 | 64,
        "a type and tags in the head, the time counted from the id's millisecond"
    );
    let head = String::from_utf8_lossy(&event.payload);
    assert!(
        head.contains("Enrolled") && head.contains("course:c.1") && head.contains("student:s1"),
        "{head}"
    );
    assert!(value(&event.headers, "Esrc-Type").is_empty());
    let prefix = store.prefix();
    assert_eq!(
        course.subject.as_str(),
        format!("{prefix}.~t.course:c~2e1.Course.Enrolled")
    );
    assert_eq!(
        student.subject.as_str(),
        format!("{prefix}.~t.student:s1.Course.Enrolled")
    );
    assert!(course.payload.is_empty() && student.payload.is_empty());
    assert_eq!(value(&course.headers, "Esrc-Marker"), "tag 1");
    assert_eq!(value(&student.headers, "Esrc-Marker"), "tag 2");
    assert_eq!(
        value(
            &course.headers,
            "Nats-Expected-Last-Subject-Sequence-Subject"
        ),
        format!("{prefix}.~t.student:s1.>"),
        "the condition's one check rides on the first marker"
    );
    assert_eq!(
        value(&course.headers, "Nats-Expected-Last-Subject-Sequence"),
        "0"
    );
    assert_eq!(value(&student.headers, "Nats-Batch-Commit"), "1");
}

/// A stored type or tag esrc cannot hold is an `Error::Format` naming the header, not a
/// panic and not an event with its tags silently dropped.
#[esrc_conformance::requires(nats)]
#[tokio::test]
async fn a_bad_stored_type_or_tag_is_a_typed_error_naming_it() {
    let Some(nats) = common::nats().await else {
        return;
    };
    let store = nats.store().await;
    let context = jetstream::new(store.client().clone());
    let cases = [
        ("Esrc-Tags", "course:c1 no-colon", "`Esrc-Tags` is invalid"),
        ("Esrc-Tags", "", "`Esrc-Tags` is invalid"),
        ("Esrc-Type", "two words", "`Esrc-Type` is invalid"),
    ];
    for (name, bad, message) in cases {
        let id = Uuid::now_v7();
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", Uuid::new_v4().to_string().as_str());
        headers.insert("Esrc", "2 1 1 1700000000000000");
        headers.insert(name, bad);
        let subject = format!("{}.Thing.{id}", store.prefix());
        let ack = context.publish_with_headers(subject, headers, "{}".into());
        ack.await.unwrap().await.unwrap();
        let read: Vec<_> = store.replay_one("Thing", id, Version::ZERO).collect().await;
        let error = read[0].as_ref().expect_err(bad);
        assert!(
            matches!(error, Error::Format { category, .. } if category == "Thing"),
            "{bad:?}: {error:?}"
        );
        assert!(
            esrc_core::Chain(error).to_string().contains(message),
            "{bad:?}: {error}"
        );
    }
    store.destroy().await.unwrap();
}
