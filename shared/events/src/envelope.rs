//! The CloudEvents 1.0 envelope (JSON event format), the one shape every event
//! of the shop has on the wire.

use serde::{Deserialize, Serialize};

use shared_http::timestamp;

/// `specversion` of every event.
pub const SPEC_VERSION: &str = "1.0";

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
    /// When the change was made (RFC 3339, UTC).
    pub time: String,
    pub datacontenttype: String,
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
            id: uuid::Uuid::now_v7().to_string(),
            source: format!("/{source}"),
            event_type: event_type.to_owned(),
            subject: subject.to_owned(),
            time: timestamp::to_rfc3339(timestamp::now_ms()),
            datacontenttype: "application/json".to_owned(),
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
        assert!(
            event
                .time_ms()
                .is_some_and(|ms| (timestamp::now_ms() - ms).abs() < 5_000)
        );
        let back: CloudEvent = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, event);
    }

    #[test]
    fn ids_are_time_ordered() {
        let a = CloudEvent::new("x", "t", "s", &1).expect("ok");
        let b = CloudEvent::new("x", "t", "s", &1).expect("ok");
        assert!(a.id < b.id, "{} then {}", a.id, b.id);
    }
}
