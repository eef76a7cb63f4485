//! Upcasting chains and their errors, without a store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use esrc_core::{
    DecodeError, Envelope, Error, Event, NewEvent, Position, Version, Versioned, upcast,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Deserialize)]
struct PriceV1 {
    cents: u32,
}
impl Versioned for PriceV1 {}

#[derive(Deserialize)]
struct PriceV2 {
    cents: u64,
    currency: String,
}
impl Versioned for PriceV2 {
    const VERSION: u32 = 2;
    fn decode<'de>(version: u32, payload: &'de [u8]) -> Result<Self, DecodeError>
    where
        Self: Deserialize<'de>,
    {
        upcast::<Self, PriceV1>(version, payload)
    }
}
impl From<PriceV1> for PriceV2 {
    fn from(v1: PriceV1) -> Self {
        PriceV2 {
            cents: v1.cents.into(),
            currency: "EUR".into(),
        }
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Priced {
    amount: f64,
    currency: String,
}
impl Versioned for Priced {
    const VERSION: u32 = 3;
    fn decode<'de>(version: u32, payload: &'de [u8]) -> Result<Self, DecodeError>
    where
        Self: Deserialize<'de>,
    {
        upcast::<Self, PriceV2>(version, payload)
    }
}
impl From<PriceV2> for Priced {
    fn from(v2: PriceV2) -> Self {
        Priced {
            amount: v2.cents as f64 / 100.0,
            currency: v2.currency,
        }
    }
}
impl Event for Priced {
    const NAME: &'static str = "Priced";
}

fn envelope(schema_version: u32, payload: &str) -> Envelope {
    NewEvent::from_payload(schema_version, payload.to_owned()).into_envelope(
        "Priced",
        Uuid::nil(),
        Version(1),
        Position(42),
    )
}

#[test]
fn every_old_version_reads_as_today() {
    let v1 = envelope(1, r#"{"cents":250}"#);
    let v2 = envelope(2, r#"{"cents":99,"currency":"USD"}"#);
    let v3 = envelope(3, r#"{"amount":1.5,"currency":"GBP"}"#);
    assert_eq!(
        v1.deserialize::<Priced>().unwrap(),
        Priced {
            amount: 2.5,
            currency: "EUR".into()
        }
    );
    assert_eq!(
        v2.deserialize::<Priced>().unwrap(),
        Priced {
            amount: 0.99,
            currency: "USD".into()
        }
    );
    assert_eq!(
        v3.deserialize::<Priced>().unwrap(),
        Priced {
            amount: 1.5,
            currency: "GBP".into()
        }
    );
}

#[test]
fn unknown_versions_name_the_type_and_both_versions() {
    match envelope(4, "{}").deserialize::<Priced>() {
        Err(Error::Format {
            category,
            position,
            schema_version,
            source,
            ..
        }) => {
            assert_eq!(
                (category.as_str(), position, schema_version),
                ("Priced", Position(42), 4)
            );
            match source {
                DecodeError::UnknownVersion {
                    type_name,
                    known,
                    found,
                } => {
                    assert!(type_name.ends_with("Priced"), "{type_name}");
                    assert_eq!((known, found), (3, 4));
                }
                other => panic!("{other}"),
            }
        }
        other => panic!("{other:?}"),
    }
    match envelope(0, "{}").deserialize::<Priced>() {
        Err(Error::Format {
            source:
                DecodeError::UnknownVersion {
                    type_name,
                    known,
                    found,
                },
            ..
        }) => {
            assert!(
                type_name.ends_with("PriceV1"),
                "the oldest type is named: {type_name}"
            );
            assert_eq!((known, found), (1, 0));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bad_old_payload_is_a_format_error_with_the_stored_version() {
    let error = envelope(1, r#"{"cents":"lots"}"#)
        .deserialize::<Priced>()
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(
        error,
        Error::Format {
            schema_version: 1,
            source: DecodeError::Payload(_),
            ..
        }
    ));
    assert!(
        text.contains("`Priced`")
            && text.contains("position 42")
            && text.contains("schema version 1"),
        "{text}"
    );
}

#[test]
fn new_events_carry_their_schema_version() {
    let event = NewEvent::new(&Priced {
        amount: 1.0,
        currency: "EUR".into(),
    })
    .unwrap();
    assert_eq!(event.schema_version, 3);
    assert_eq!(
        event.event_id.get_version_num(),
        7,
        "ids are UUIDv7 by default"
    );
}
