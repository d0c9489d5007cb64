//! The event catalogue: `events/asyncapi.json` at the workspace root, an
//! AsyncAPI 3.0 document with one channel per event type (its address the
//! type, also the NATS subject) whose message's payload is a `$ref` to the
//! type's JSON Schema, `<service>/events/<type>.schema.json` (one home per
//! schema). `scripts/check-asyncapi.sh` validates the document with the
//! AsyncAPI CLI; [`EventCatalogue::assert_matches`] checks a published
//! event against the schema the document gives its channel.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The workspace root (this crate is `shared/testkit`).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The AsyncAPI document of the events, read from the repository.
pub struct EventCatalogue {
    doc: Value,
    /// Where the document is: its `$ref`s to files are relative to it.
    dir: PathBuf,
}

impl EventCatalogue {
    pub fn load() -> Self {
        let dir = workspace().join("events");
        Self {
            doc: read_json(&dir.join("asyncapi.json")),
            dir,
        }
    }

    /// What the local `$ref` `reference` (`#/…`) points at.
    fn follow(&self, reference: &Value) -> &Value {
        let pointer = reference["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix('#'))
            .unwrap_or_else(|| panic!("not a local $ref: {reference}"));
        self.doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("the $ref {pointer} points at nothing"))
    }

    /// The addresses of the channels: the event types.
    pub fn addresses(&self) -> Vec<String> {
        let channels = self.doc["channels"].as_object().expect("channels");
        channels
            .values()
            .map(|c| c["address"].as_str().expect("an address").to_owned())
            .collect()
    }

    /// The schema file of the one message of the channel at `address`.
    pub fn schema_of(&self, address: &str) -> PathBuf {
        let channels = self.doc["channels"].as_object().expect("channels");
        let channel = channels
            .values()
            .find(|c| c["address"] == address)
            .unwrap_or_else(|| panic!("events/asyncapi.json has no channel for {address}"));
        let messages: Vec<&Value> = channel["messages"]
            .as_object()
            .expect("messages")
            .values()
            .collect();
        assert_eq!(messages.len(), 1, "{address}: one message per channel");
        let payload = &self.follow(messages[0])["payload"]["$ref"];
        let file = payload
            .as_str()
            .unwrap_or_else(|| panic!("{address}: the payload is a $ref to its schema file"));
        canonical(&self.dir.join(file))
    }

    /// `event`, published on `subject`, matches the schema the document
    /// gives that channel, which is the producer's own
    /// (`<schemas>/<subject>.schema.json`), and names it as its `dataschema`.
    #[track_caller]
    pub fn assert_matches(&self, subject: &str, event: &Value, schemas: &Path) {
        let schema = self.schema_of(subject);
        let own = canonical(&schemas.join(format!("{subject}.schema.json")));
        assert_eq!(schema, own, "the document's schema for {subject}");
        crate::nats::assert_matches_schema(&schema, event);
        let id = read_json(&schema)["$id"].clone();
        assert_eq!(
            event["dataschema"].as_str(),
            id.as_str()
                .map(|id| format!("{id}#/properties/data"))
                .as_deref(),
            "{event:#}"
        );
    }
}

#[cfg(test)]
mod tests {
    use shared_events::envelope::{SCHEMA_BASE, dataschema_of};

    use super::*;

    /// Every `<service>/events/<type>.schema.json` of the workspace.
    fn schema_files() -> Vec<PathBuf> {
        let mut found = Vec::new();
        for dir in std::fs::read_dir(workspace())
            .expect("the workspace")
            .flatten()
        {
            let Ok(files) = std::fs::read_dir(dir.path().join("events")) else {
                continue;
            };
            for file in files.flatten() {
                if file.file_name().to_string_lossy().ends_with(".schema.json") {
                    found.push(canonical(&file.path()));
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn every_schema_file_is_one_channel_of_the_document_under_its_type() {
        let catalogue = EventCatalogue::load();
        let files = schema_files();
        assert!(files.len() >= 8, "{files:?}");
        let mut addresses = catalogue.addresses();
        addresses.sort();
        let mut types = Vec::new();
        for file in &files {
            let schema = read_json(file);
            let event_type = schema["properties"]["type"]["const"]
                .as_str()
                .expect("a type");
            let name = file.file_name().expect("a name").to_string_lossy();
            assert_eq!(name, format!("{event_type}.schema.json"));
            assert_eq!(schema["title"], event_type);
            assert_eq!(
                schema["$id"],
                format!("{SCHEMA_BASE}{event_type}.schema.json")
            );
            assert_eq!(
                schema["properties"]["dataschema"]["const"],
                dataschema_of(event_type)
            );
            assert_eq!(&catalogue.schema_of(event_type), file);
            let sent = catalogue.doc["operations"].as_object().expect("operations");
            assert!(
                sent.values().any(|o| o["action"] == "send"
                    && catalogue.follow(&o["channel"])["address"] == event_type),
                "no send operation for {event_type}"
            );
            types.push(event_type.to_owned());
        }
        types.sort();
        assert_eq!(addresses, types, "one channel per schema file, no more");
    }

    #[test]
    fn the_envelopes_take_cloudevents_extensions_and_nothing_misnamed() {
        let schema =
            workspace().join("inventory/events/shop.inventory.reservation_expired.schema.json");
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&read_json(&schema))
            .expect("a schema");
        let event_type = "shop.inventory.reservation_expired";
        let event = serde_json::json!({
            "specversion": "1.0", "id": "01890a5d-ac96-774b-bcce-b302099a8057",
            "source": "/inventory", "type": event_type, "subject": "r-1",
            "time": "2026-12-07T14:00:00.123Z", "datacontenttype": "application/json",
            "dataschema": dataschema_of(event_type),
            "data": {"reservation_id": "r-1", "lines": [{"sku": "A001", "quantity": 1}],
                     "expired_at": "2026-12-07T14:00:00.123Z"}
        });
        assert!(validator.is_valid(&event));
        // A field a newer producer added to data, or to a line, is valid: the
        // schemas leave them open (CI checks producers both ways instead).
        let mut added = event.clone();
        added["data"]["colour"] = "red".into();
        added["data"]["lines"][0]["warehouse"] = 3.into();
        assert!(validator.is_valid(&added));
        let with = |name: &str, value: Value| {
            let mut changed = event.clone();
            changed[name] = value;
            validator.is_valid(&changed)
        };
        assert!(with("partitionkey", "r-1".into()));
        assert!(with("sequence", 7.into()));
        assert!(with(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()
        ));
        assert!(!with("traceparent", "not a trace".into()));
        assert!(
            !with("Partition_Key", "r-1".into()),
            "not a CloudEvents name"
        );
        assert!(
            !with("averyveryverylongname1", "x".into()),
            "over 20 characters"
        );
        assert!(
            !with("nested", serde_json::json!({"a": 1})),
            "not an attribute value"
        );
        assert!(
            !with("time", "2026-12-07T15:00:00.123+01:00".into()),
            "not UTC"
        );
        let mut without = event.clone();
        without
            .as_object_mut()
            .expect("an object")
            .remove("dataschema");
        assert!(
            validator.is_valid(&without),
            "events from before dataschema"
        );
    }
}
