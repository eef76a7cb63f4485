//! What the derives generate, checked by behaviour: names, versions, variants, groups,
//! upcasting chains, borrowing, and the round trip through the memory store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use esrc_core::{
    DecodeError, DecodeGroup, Envelope, Error, Event, EventGroup, Expected, NewEvent, Position,
    Publish, ReplayOne, Version, Versioned,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, PartialEq, Serialize, Deserialize, esrc_core::Event)]
enum TabEvent {
    Opened { table: u32 },
    Served(u32),
    Closed,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, esrc_core::Event)]
#[esrc(name = "Event")]
struct JustEvent;

#[derive(Debug, PartialEq, Serialize, Deserialize, esrc_core::Event)]
#[esrc(keep_suffix)]
struct LedgerEvent;

#[test]
fn names_come_from_the_type_or_the_attribute() {
    assert_eq!(TabEvent::NAME, "Tab");
    assert_eq!(JustEvent::NAME, "Event");
    assert_eq!(
        LedgerEvent::NAME,
        "LedgerEvent",
        "keep_suffix keeps the type name whole"
    );
    assert_eq!(<TabEvent as Versioned>::VERSION, 1);
    assert_eq!(<TabEvent as EventGroup>::NAMES, ["Tab"]);
}

#[test]
fn variants_are_named() {
    assert_eq!(TabEvent::Opened { table: 1 }.variant(), "Opened");
    assert_eq!(TabEvent::Served(2).variant(), "Served");
    assert_eq!(TabEvent::Closed.variant(), "Closed");
    assert_eq!(JustEvent.variant(), "JustEvent");
}

#[derive(Debug, PartialEq, Serialize, Deserialize, esrc_core::Event)]
#[esrc(name = "Course")]
enum CourseEvent {
    Defined {
        #[esrc(tag)]
        course: String,
        capacity: u32,
    },
    Enrolled {
        #[esrc(tag)]
        course: String,
        #[esrc(tag = "student")]
        who: Uuid,
    },
    Renamed(#[esrc(tag = "course")] String, String),
    Cancelled,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, esrc_core::Event)]
struct Registered {
    #[esrc(tag)]
    username: String,
}

#[test]
fn tags_come_from_marked_fields() {
    let who = Uuid::nil();
    let defined = CourseEvent::Defined {
        course: "c1".into(),
        capacity: 3,
    };
    assert_eq!(defined.tags(), ["course:c1"]);
    let enrolled = CourseEvent::Enrolled {
        course: "c1".into(),
        who,
    };
    assert_eq!(
        enrolled.tags(),
        ["course:c1".to_owned(), format!("student:{who}")]
    );
    assert_eq!(
        CourseEvent::Renamed("c1".into(), "Maths".into()).tags(),
        ["course:c1"]
    );
    assert!(CourseEvent::Cancelled.tags().is_empty());
    assert_eq!(
        TabEvent::Closed.tags(),
        Vec::<String>::new(),
        "no field marked: no tags"
    );
    let registered = Registered {
        username: "ada".into(),
    };
    assert_eq!(registered.tags(), ["username:ada"]);

    let event = NewEvent::new(&enrolled).unwrap();
    assert_eq!(event.event_type, "Enrolled");
    let tags: Vec<&str> = event.tags.iter().map(|tag| tag.as_str()).collect();
    assert_eq!(tags, ["course:c1".to_owned(), format!("student:{who}")]);
    let bad = NewEvent::new(&Registered {
        username: "two words".into(),
    });
    assert!(
        matches!(bad, Err(Error::InvalidName { ref name, .. }) if name == "username:two words"),
        "an invalid tag value is refused when the event is encoded, got {bad:?}"
    );
}

mod v1 {
    #[derive(serde::Deserialize, esrc_core::Versioned)]
    pub(crate) struct Ordered {
        pub(crate) item: String,
    }
}

#[derive(Deserialize, esrc_core::Versioned)]
#[esrc(version = 2, previous = v1::Ordered)]
struct OrderedV2 {
    items: Vec<String>,
}

impl From<v1::Ordered> for OrderedV2 {
    fn from(v1: v1::Ordered) -> Self {
        OrderedV2 {
            items: vec![v1.item],
        }
    }
}

/// Generic previous types work too.
#[derive(Deserialize)]
struct Wrapper<T> {
    inner: T,
}
impl<T> Versioned for Wrapper<T> {}

#[derive(Debug, PartialEq, Serialize, Deserialize, esrc_core::Event)]
#[esrc(name = "Ordered", version = 3, previous = OrderedV2)]
struct Ordered {
    items: Vec<String>,
    rush: bool,
}

impl From<OrderedV2> for Ordered {
    fn from(v2: OrderedV2) -> Self {
        Ordered {
            items: v2.items,
            rush: false,
        }
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize, esrc_core::Event)]
#[esrc(name = "Wrapped", version = 2, previous = Wrapper<u32>)]
struct Wrapped {
    value: u64,
}

impl From<Wrapper<u32>> for Wrapped {
    fn from(old: Wrapper<u32>) -> Self {
        Wrapped {
            value: old.inner.into(),
        }
    }
}

fn envelope(category: &str, schema_version: u32, payload: &str) -> Envelope {
    NewEvent::from_payload(schema_version, payload.to_owned()).into_envelope(
        category,
        Uuid::nil(),
        Version(1),
        Position(9),
    )
}

#[test]
fn previous_chains_upcast_through_every_version() {
    let v1 = envelope("Ordered", 1, r#"{"item":"tea"}"#);
    let v2 = envelope("Ordered", 2, r#"{"items":["tea","cake"]}"#);
    let v3 = envelope("Ordered", 3, r#"{"items":[],"rush":true}"#);
    assert_eq!(
        v1.deserialize::<Ordered>().unwrap(),
        Ordered {
            items: vec!["tea".into()],
            rush: false
        }
    );
    assert_eq!(
        v2.deserialize::<Ordered>().unwrap(),
        Ordered {
            items: vec!["tea".into(), "cake".into()],
            rush: false
        }
    );
    assert_eq!(
        v3.deserialize::<Ordered>().unwrap(),
        Ordered {
            items: vec![],
            rush: true
        }
    );
    let wrapped = envelope("Wrapped", 1, r#"{"inner":7}"#);
    assert_eq!(
        wrapped.deserialize::<Wrapped>().unwrap(),
        Wrapped { value: 7 }
    );
}

#[test]
fn an_unknown_version_names_the_type_and_both_versions() {
    match envelope("Ordered", 5, "{}").deserialize::<Ordered>() {
        Err(Error::Format {
            source:
                DecodeError::UnknownVersion {
                    type_name,
                    known,
                    found,
                },
            ..
        }) => {
            assert!(type_name.ends_with("Ordered"), "{type_name}");
            assert_eq!((known, found), (3, 5));
        }
        other => panic!("{other:?}"),
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize, esrc_core::Event)]
enum NoteEvent<'a> {
    Written { text: &'a str },
}

#[derive(Debug, PartialEq, esrc_core::EventGroup)]
enum Feed<'a> {
    Tab(TabEvent),
    Note(NoteEvent<'a>),
    #[esrc(ignore)]
    #[allow(dead_code)]
    Local(String, u32),
}

#[derive(Debug, PartialEq, esrc_core::EventGroup)]
enum Owned {
    Tab(TabEvent),
    Ordered(Ordered),
}

#[test]
fn groups_decode_by_category_and_borrow() {
    assert_eq!(Feed::NAMES, ["Tab", "Note"]);
    assert_eq!(Owned::NAMES, ["Tab", "Ordered"]);
    let note = envelope("Note", 1, r#"{"Written":{"text":"zero copy"}}"#);
    match Feed::decode_group(&note).unwrap() {
        Feed::Note(NoteEvent::Written { text }) => {
            assert_eq!(text, "zero copy");
            assert!(note.payload.as_ptr_range().contains(&text.as_ptr()));
        }
        other => panic!("{other:?}"),
    }
    let tab = envelope("Tab", 1, r#""Closed""#);
    assert_eq!(
        Feed::decode_group(&tab).unwrap(),
        Feed::Tab(TabEvent::Closed)
    );
    let old = envelope("Ordered", 1, r#"{"item":"tea"}"#);
    assert_eq!(
        old.deserialize::<Owned>().unwrap(),
        Owned::Ordered(Ordered {
            items: vec!["tea".into()],
            rush: false
        })
    );
    match envelope("Kitchen", 1, "{}").deserialize::<Feed<'_>>() {
        Err(Error::UnknownEvent {
            category, known, ..
        }) => {
            assert_eq!(
                (category.as_str(), known),
                ("Kitchen", ["Tab", "Note"].as_slice())
            );
        }
        other => panic!("{other:?}"),
    }
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize, esrc_core::Versioned)]
#[esrc(version = 2, previous = TabStateV1)]
struct TabState {
    open: bool,
    served: u32,
}

#[derive(Deserialize, esrc_core::Versioned)]
struct TabStateV1 {
    open: bool,
}

impl From<TabStateV1> for TabState {
    fn from(v1: TabStateV1) -> Self {
        TabState {
            open: v1.open,
            served: 0,
        }
    }
}

#[test]
fn snapshot_state_is_versioned_the_same_way() {
    assert_eq!(<TabState as Versioned>::VERSION, 2);
    assert_eq!(
        TabState::decode(1, br#"{"open":true}"#).unwrap(),
        TabState {
            open: true,
            served: 0
        }
    );
    assert_eq!(
        TabState::decode(2, br#"{"open":false,"served":3}"#).unwrap(),
        TabState {
            open: false,
            served: 3
        }
    );
    assert!(TabState::decode(3, b"{}").is_err());
}

/// v1 and v2 payloads stored in the memory store read back as v3.
#[tokio::test]
async fn stored_old_versions_read_as_today() {
    let store = esrc_memory::MemoryStore::new();
    let id = Uuid::now_v7();
    let events = vec![
        NewEvent::from_payload(1, r#"{"item":"tea"}"#),
        NewEvent::from_payload(2, r#"{"items":["cake","pie"]}"#),
        NewEvent::new(&Ordered {
            items: vec!["soup".into()],
            rush: true,
        })
        .unwrap(),
    ];
    store
        .publish("Ordered", id, Expected::NoStream, events)
        .await
        .unwrap();
    let stored: Vec<Envelope> =
        futures::StreamExt::collect::<Vec<_>>(store.replay_one("Ordered", id, Version::ZERO))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    assert_eq!(
        stored.iter().map(|e| e.schema_version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let read: Vec<Ordered> = stored.iter().map(|e| e.deserialize().unwrap()).collect();
    assert_eq!(
        read,
        [
            Ordered {
                items: vec!["tea".into()],
                rush: false
            },
            Ordered {
                items: vec!["cake".into(), "pie".into()],
                rush: false
            },
            Ordered {
                items: vec!["soup".into()],
                rush: true
            },
        ]
    );
}

/// `#[esrc(crate = "...")]` for crates that re-export esrc-core.
mod reexport {
    pub(crate) mod framework {
        pub(crate) use esrc_core as esrc;
    }

    #[derive(serde::Serialize, serde::Deserialize, esrc_core::Event)]
    #[esrc(crate = "crate::reexport::framework::esrc", name = "Renamed")]
    pub(crate) struct Moved;
}

#[test]
fn the_crate_path_can_be_changed() {
    assert_eq!(<reexport::Moved as esrc_core::Event>::NAME, "Renamed");
}
