//! What comes back as written: envelope fields, old payload versions, bad payloads and names, large payloads.

use std::collections::HashMap;
use std::pin::pin;

use esrc_core::{
    CheckpointStore, Error, Expected, Metadata, NewEvent, Position, Publish, ReadExt, Replay,
    ReplayOne, Subscribe, Timestamp, Truncate, Version,
};
use futures::StreamExt;
use uuid::Uuid;

use super::support::*;
use crate::StoreFactory;
use crate::fixtures::*;

/// Event id, timestamp (to the microsecond), schema version and metadata come back as
/// written, through every read path.
pub async fn envelope_fields_round_trip<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let metadata = Metadata::new()
        .with_correlation_id(Uuid::now_v7())
        .with_causation_id(Uuid::new_v4())
        .with("user", "alice")
        .with("région", "Île-de-France ✓")
        .with("empty", "");
    let event_id = Uuid::new_v4();
    let timestamp = Timestamp::from_micros(1_700_000_000_123_457);
    let event = NewEvent::from_payload(7, br#"{"Counted":{"amount":1}}"#.as_slice())
        .with_event_id(event_id)
        .with_metadata(metadata.clone())
        .with_timestamp(timestamp);
    let plain = counted(2);
    let appended = store
        .publish(THING, id, Expected::NoStream, vec![event, plain.clone()])
        .await
        .unwrap();

    let one = replay_thing(&store, id, 0).await;
    let group = collect("replay", store.replay(&[THING], Position::ZERO)).await;
    let mut subscription = pin!(store.subscribe(&[THING], Position::ZERO));
    let mut live = Vec::new();
    for _ in 0..2 {
        live.push(
            within("subscribe", subscription.next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    for (path, envelopes) in [
        ("replay_one", &one),
        ("replay", &group),
        ("subscribe", &live),
    ] {
        assert_eq!(envelopes.len(), 2, "{path}");
        let first = &envelopes[0];
        assert_eq!(first.event_id, event_id, "{path}: event id");
        assert_eq!(
            first.timestamp, timestamp,
            "{path}: timestamp to the microsecond"
        );
        assert_eq!(first.schema_version, 7, "{path}: schema version");
        assert_eq!(first.metadata, metadata, "{path}: metadata");
        assert_eq!(first.version, Version(1), "{path}");
        let second = &envelopes[1];
        assert_eq!(second.event_id, plain.event_id, "{path}");
        assert_eq!(second.timestamp, plain.timestamp, "{path}");
        assert_eq!(
            second.metadata,
            Metadata::default(),
            "{path}: empty metadata"
        );
        assert_eq!(second.position, appended.position, "{path}");
        assert_eq!(second.payload, plain.payload, "{path}: payload bytes");
    }
    assert_eq!(one, group, "replay_one and replay agree");
    assert_eq!(one, live, "replay_one and subscribe agree");
}

/// Payloads stored at schema versions 1 and 2 read as today's version 3.
pub async fn old_payload_versions_upcast<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let v1 = NewEvent::from_payload(
        1,
        serde_json::to_vec(&NoteV1 {
            text: "Hello\nworld".into(),
        })
        .unwrap(),
    );
    let v2 = NewEvent::from_payload(
        2,
        serde_json::to_vec(&NoteV2 {
            text: "Title only".into(),
            tags: vec!["a".into()],
        })
        .unwrap(),
    );
    let v3 = NewEvent::new(&Note {
        title: "t".into(),
        body: "b".into(),
        tags: vec![],
    })
    .unwrap();
    assert_eq!(v3.schema_version, 3);
    store
        .publish("Note", id, Expected::NoStream, vec![v1, v2, v3])
        .await
        .unwrap();
    let events = collect("replay_one", store.replay_one("Note", id, Version::ZERO)).await;
    let notes: Vec<Note> = events
        .iter()
        .map(|e| e.deserialize().expect("upcasts"))
        .collect();
    assert_eq!(
        notes,
        [
            Note {
                title: "Hello".into(),
                body: "world".into(),
                tags: vec!["untagged".into()]
            },
            Note {
                title: "Title only".into(),
                body: String::new(),
                tags: vec!["a".into()]
            },
            Note {
                title: "t".into(),
                body: "b".into(),
                tags: vec![]
            },
        ]
    );
    let future = NewEvent::from_payload(4, br#"{"title":"x","body":"y","tags":[]}"#.as_slice());
    store
        .publish("Note", id, Expected::Any, vec![future])
        .await
        .unwrap();
    let events = collect("replay_one", store.replay_one("Note", id, Version(3))).await;
    match events[0].deserialize::<Note>() {
        Err(Error::Format {
            source: esrc_core::DecodeError::UnknownVersion { known, found, .. },
            ..
        }) => {
            assert_eq!((known, found), (3, 4));
        }
        other => panic!("a version newer than the type knows is a Format error, got {other:?}"),
    }
}

/// A stored payload that does not decode is `Error::Format` naming category, position and
/// schema version; the data stays readable.
pub async fn malformed_payload_is_format_error<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    let bad = NewEvent::from_payload(1, br#"{"Vanished":{"why":[1,2,3]}}"#.as_slice());
    let appended = store
        .publish(THING, id, Expected::NoStream, vec![counted(1), bad])
        .await
        .unwrap();
    let events = replay_thing(&store, id, 0).await;
    assert_eq!(events.len(), 2, "a bad payload does not hide other events");
    assert!(events[0].deserialize::<ThingEvent>().is_ok());
    match events[1].deserialize::<ThingEvent>() {
        Err(Error::Format {
            category,
            position,
            schema_version,
            ..
        }) => {
            assert_eq!(category, THING);
            assert_eq!(position, appended.position);
            assert_eq!(schema_version, 1);
        }
        other => panic!("expected Error::Format, got {other:?}"),
    }
    let read = store.load::<Tally>(id).await;
    assert!(
        matches!(read, Err(Error::Format { .. })),
        "reading the aggregate fails typed: {read:?}"
    );
    let again = replay_thing(&store, id, 0).await;
    assert_eq!(again, events, "nothing was lost");
}

/// Decoding an event of a category the reader does not know is `Error::UnknownEvent`.
pub async fn unknown_category_is_typed_error<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    store
        .publish(OTHER, id, Expected::NoStream, vec![other(1)])
        .await
        .unwrap();
    let events = collect("replay", store.replay(&[OTHER], Position::ZERO)).await;
    match events[0].deserialize::<ThingEvent>() {
        Err(Error::UnknownEvent {
            category, known, ..
        }) => {
            assert_eq!(category, OTHER);
            assert_eq!(known, [THING]);
        }
        other => panic!("expected Error::UnknownEvent, got {other:?}"),
    }
}

/// Invalid category and projection names are refused with `Error::InvalidName`, and
/// nothing is stored.
pub async fn invalid_names_are_rejected<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    for name in ["", "a.b", "a b", "*", ">", "Tab/1", "Tåb", "a\nb"] {
        let result = store
            .publish(name, id, Expected::Any, vec![counted(1)])
            .await;
        assert!(
            matches!(result, Err(Error::InvalidName { .. })),
            "publish {name:?}: {result:?}"
        );
        let item = first_item("replay_one", store.replay_one(name, id, Version::ZERO)).await;
        assert!(
            matches!(item, Some(Err(Error::InvalidName { .. }))),
            "replay_one {name:?}: {item:?}"
        );
        let item = first_item("replay", store.replay(&[THING, name], Position::ZERO)).await;
        assert!(
            matches!(item, Some(Err(Error::InvalidName { .. }))),
            "replay {name:?}: {item:?}"
        );
        let item = first_item("subscribe", store.subscribe(&[name], Position::ZERO)).await;
        assert!(
            matches!(item, Some(Err(Error::InvalidName { .. }))),
            "subscribe {name:?}: {item:?}"
        );
        if factory.capabilities().checkpoints {
            let result = store.save_checkpoint(name, Position(1)).await;
            assert!(
                matches!(result, Err(Error::InvalidName { .. })),
                "checkpoint {name:?}: {result:?}"
            );
        }
        if factory.capabilities().truncate {
            let result = store.truncate(name, id, Version(1)).await;
            assert!(
                matches!(result, Err(Error::InvalidName { .. })),
                "truncate {name:?}: {result:?}"
            );
        }
    }
    assert!(
        collect("replay", store.replay(&[THING], Position::ZERO))
            .await
            .is_empty()
    );
}

/// A payload of about 1 MiB and payloads full of unicode round-trip byte for byte.
pub async fn large_and_unicode_payloads_round_trip<F: StoreFactory>(factory: &F) {
    let store = factory.store().await;
    let id = Uuid::now_v7();
    // Just under 1 MiB with its envelope, so it fits the default message limit of NATS.
    let large = ThingEvent::Made {
        label: "x".repeat(1_040_000),
    };
    let unicode = ThingEvent::Made {
        label: "naïve café — 東京 — שלום — 🦀🎉 — e\u{301} — \u{0} — \u{feff} — \"quoted\" \\"
            .into(),
    };
    let batch = vec![
        NewEvent::new(&large).unwrap(),
        NewEvent::new(&unicode).unwrap(),
    ];
    let payloads: Vec<_> = batch.iter().map(|e| e.payload.clone()).collect();
    store
        .publish(THING, id, Expected::NoStream, batch)
        .await
        .unwrap();
    let events = replay_thing(&store, id, 0).await;
    let stored: Vec<_> = events.iter().map(|e| e.payload.clone()).collect();
    assert!(stored == payloads, "payload bytes must round-trip");
    assert_eq!(events[0].deserialize::<ThingEvent>().unwrap(), large);
    assert_eq!(events[1].deserialize::<ThingEvent>().unwrap(), unicode);
    let counts: HashMap<u64, usize> = events
        .iter()
        .map(|e| (e.version.get(), e.payload.len()))
        .collect();
    assert!(counts[&1] > 1_000_000);
}
