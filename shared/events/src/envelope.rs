//! The CloudEvents 1.0 envelope (JSON event format), the one shape every event
//! of the shop has on the wire.

use std::sync::{LazyLock, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use uuid::{ContextV7, Timestamp, Uuid};

use shared_http::timestamp;

/// `specversion` of every event.
pub const SPEC_VERSION: &str = "1.0";

/// Where the schemas of the events are named: the schema of the event type
/// `t` (envelope and `data`) has the `$id` `<SCHEMA_BASE>t.schema.json`.
pub const SCHEMA_BASE: &str = "https://resilient-shop.example/events/";

/// The `dataschema` of the events of `event_type`: their schema's `$id`
/// with the JSON Pointer to its `data` schema, e.g.
/// `https://resilient-shop.example/events/shop.order.confirmed.schema.json#/properties/data`.
/// Stable: a type's `data` changes only by additions, under the same URI.
pub fn dataschema_of(event_type: &str) -> String {
    format!("{SCHEMA_BASE}{event_type}.schema.json#/properties/data")
}

/// Makes event ids: UUIDv7 with the sub-millisecond time in the 12 bits
/// after the milliseconds (RFC 9562's method 3), still increasing within the
/// process. Ids made apart (by a service's replicas, or by the database:
/// see `Outbox::completed_insert_sql`) on one clock then sort by time, not
/// only by the millisecond: an aggregate's events, whose changes take its
/// lock in turn, stay in the order of their changes.
static IDS: LazyLock<Mutex<ContextV7>> =
    LazyLock::new(|| Mutex::new(ContextV7::new().with_additional_precision()));

fn new_id() -> String {
    let context = IDS.lock().unwrap_or_else(PoisonError::into_inner);
    Uuid::new_v7(Timestamp::now(&*context)).to_string()
}

/// An event as published: CloudEvents 1.0, JSON format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    /// Unique per event (a UUIDv7: time-ordered), also sent as `Nats-Msg-Id`.
    pub id: String,
    /// The producing service, e.g. `/order`.
    pub source: String,
    /// e.g. `shop.order.confirmed`; also the NATS subject.
    #[serde(rename = "type")]
    pub event_type: String,
    /// What the event is about: an order id, a sku, a reservation id.
    pub subject: String,
    /// The time of the change the event describes (RFC 3339, UTC): when its
    /// service made it, in the transaction that also wrote the event; not
    /// when the event was published.
    pub time: String,
    pub datacontenttype: String,
    /// The URI of the schema of `data` (see [`dataschema_of`]). Events
    /// written before it was sent have none; a value that is not a string
    /// reads as none, so this reader refuses nothing an older one took.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "uri_or_none"
    )]
    pub dataschema: Option<String>,
    pub data: serde_json::Value,
}

impl CloudEvent {
    /// An event of `event_type` from the service `source` (`order`) about
    /// `subject`, made now.
    ///
    /// # Errors
    /// When `data` cannot be serialised as JSON.
    pub fn new(
        source: &str,
        event_type: &str,
        subject: &str,
        data: &impl Serialize,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            specversion: SPEC_VERSION.to_owned(),
            id: new_id(),
            source: format!("/{source}"),
            event_type: event_type.to_owned(),
            subject: subject.to_owned(),
            time: timestamp::to_rfc3339(timestamp::now_ms()),
            datacontenttype: "application/json".to_owned(),
            dataschema: Some(dataschema_of(event_type)),
            data: serde_json::to_value(data)?,
        })
    }

    /// The event's `data` as `T`.
    ///
    /// # Errors
    /// When `data` does not have the shape of `T`.
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        Ok(serde_json::from_value(self.data.clone())?)
    }

    /// Milliseconds since the Unix epoch of `time`, if it parses.
    pub fn time_ms(&self) -> Option<i64> {
        timestamp::from_rfc3339(&self.time)
    }
}

/// `dataschema` as read: a string, or none for anything else.
fn uri_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(uri) => Some(uri),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_serialises_as_a_cloudevent() {
        let event = CloudEvent::new(
            "order",
            "shop.order.confirmed",
            "o-1",
            &serde_json::json!({"a": 1}),
        )
        .expect("serialisable");
        let json = serde_json::to_value(&event).expect("serialisable");
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "shop.order.confirmed");
        assert_eq!(json["source"], "/order");
        assert_eq!(json["datacontenttype"], "application/json");
        assert_eq!(
            json["dataschema"],
            "https://resilient-shop.example/events/shop.order.confirmed.schema.json#/properties/data"
        );
        assert!(
            event
                .time_ms()
                .is_some_and(|ms| (timestamp::now_ms() - ms).abs() < 5_000)
        );
        let back: CloudEvent = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, event);
    }

    #[test]
    fn events_without_a_dataschema_or_with_extensions_still_read() {
        let event = CloudEvent::new("order", "t", "s", &1).expect("ok");
        let mut json = serde_json::to_value(&event).expect("serialisable");
        json["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into();
        json["partitionkey"] = "s".into();
        for dataschema in [None, Some(serde_json::Value::Null), Some(7.into())] {
            match dataschema {
                None => json
                    .as_object_mut()
                    .expect("an object")
                    .remove("dataschema"),
                Some(odd) => json
                    .as_object_mut()
                    .expect("an object")
                    .insert("dataschema".into(), odd),
            };
            let back: CloudEvent = serde_json::from_value(json.clone()).expect("read");
            assert_eq!(back.dataschema, None);
            assert_eq!(back.data, event.data);
            // Written back as it came: without one.
            let again = serde_json::to_value(&back).expect("serialisable");
            assert!(again.get("dataschema").is_none(), "{again}");
        }
    }

    #[test]
    fn ids_are_time_ordered() {
        let a = CloudEvent::new("x", "t", "s", &1).expect("ok");
        let b = CloudEvent::new("x", "t", "s", &1).expect("ok");
        assert!(a.id < b.id, "{} then {}", a.id, b.id);
    }
}
