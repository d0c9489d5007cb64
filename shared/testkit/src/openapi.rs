//! Checks a service's `GET /openapi.json` against the service itself.
//!
//! [`ApiDescription::fetch`] reads the document and checks that it is OpenAPI
//! 3.x: it parses as an OpenAPI 3.1 document, every `$ref` resolves, every
//! schema is a valid JSON Schema (2020-12, the dialect of OpenAPI 3.1), every
//! path parameter is declared, every security requirement names a scheme, and
//! every example fits its schema. The other methods compare the document with
//! the running service:
//!
//! - [`ApiDescription::assert_operations`]: the documented operations are
//!   exactly the routes the test lists (the contract's, plus the plumbing's);
//! - [`ApiDescription::assert_undocumented_methods_are_405`]: on each documented
//!   path every other method is a 405 problem whose `Allow` lists the documented
//!   ones, so the service serves nothing there that the document omits;
//! - [`ApiDescription::probe`]: each documented operation, called on the real
//!   socket with the document's own examples, is routed (never the router's 404
//!   or a 405), and its status, media type and body are the documented ones.

use std::collections::BTreeSet;

use actix_web::http::Method;
use serde_json::{Value, json};

use super::{TestClient, TestResponse};

/// The methods an OpenAPI path item may hold, as they are spelled there.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// A fetched and checked API description.
pub struct ApiDescription {
    pub doc: Value,
}

impl ApiDescription {
    /// Checks that `doc` is a sound OpenAPI 3.x document (see the module docs).
    #[track_caller]
    pub fn from_value(doc: Value) -> Self {
        let api = Self { doc };
        api.check_document();
        api
    }

    /// `GET /openapi.json` from `client`'s server, checked as [`Self::from_value`] does.
    pub async fn fetch(client: &TestClient) -> Self {
        let res = client.get(shared_http::paths::OPENAPI).await;
        res.assert_status(200);
        assert_eq!(
            media_type(&res).as_deref(),
            Some("application/json"),
            "content type of {}",
            shared_http::paths::OPENAPI
        );
        Self::from_value(res.body)
    }

    /// Every documented operation as `("GET", "/things/{id}")`.
    pub fn operations(&self) -> BTreeSet<(String, String)> {
        self.paths()
            .flat_map(|(path, item)| {
                METHODS
                    .iter()
                    .filter(|m| item.get(**m).is_some())
                    .map(move |m| (m.to_uppercase(), path.clone()))
            })
            .collect()
    }

    /// The documented operations are exactly `expected`.
    #[track_caller]
    pub fn assert_operations(&self, expected: &[(&str, &str)]) {
        let expected: BTreeSet<(String, String)> = expected
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        let documented = self.operations();
        let missing: Vec<_> = expected.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "served but undocumented: {missing:?}; documented but not expected: {extra:?}"
        );
    }

    /// `value` fits the component schema `name` (e.g. a contract example).
    #[track_caller]
    pub fn assert_valid(&self, name: &str, value: &Value) {
        let schema = json!({ "$ref": format!("#/components/schemas/{name}") });
        if let Err(errors) = self.validate(&schema, value) {
            panic!("{value} does not fit schema {name}: {errors}");
        }
    }

    /// `value` does not fit the component schema `name`.
    #[track_caller]
    pub fn assert_invalid(&self, name: &str, value: &Value) {
        let schema = json!({ "$ref": format!("#/components/schemas/{name}") });
        assert!(
            self.validate(&schema, value).is_err(),
            "{value} should not fit schema {name}"
        );
    }

    /// On every documented path, each method it does not document answers a
    /// 405 problem whose `Allow` header lists exactly the documented methods.
    pub async fn assert_undocumented_methods_are_405(&self, client: &TestClient) {
        for (path, item) in self.paths() {
            let url = self.example_url(&path, item, None);
            let documented: BTreeSet<String> = METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_uppercase())
                .collect();
            for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "TRACE"] {
                if documented.contains(method) {
                    continue;
                }
                let method = Method::from_bytes(method.as_bytes()).expect("a method name");
                let res = client.send(method.clone(), &url, &[], None).await;
                res.assert_problem(405, "method_not_allowed");
                let allow: BTreeSet<String> = res
                    .header("allow")
                    .unwrap_or_default()
                    .split(',')
                    .map(|m| m.trim().to_owned())
                    .filter(|m| !m.is_empty())
                    .collect();
                assert_eq!(allow, documented, "Allow of {method} {url}");
            }
        }
    }

    /// Calls every documented operation once with the document's examples and
    /// checks that it is routed and answers as documented. Returns how many
    /// operations it called.
    pub async fn probe(&self, client: &TestClient) -> usize {
        let mut probed = 0;
        for (path, item) in self.paths() {
            for method in METHODS {
                let Some(operation) = item.get(method) else {
                    continue;
                };
                let url = self.example_url(&path, item, Some(operation));
                let body = self.example_body(operation);
                let headers: &[(&str, &str)] = if body.is_some() {
                    &[("content-type", "application/json")]
                } else {
                    &[]
                };
                let method =
                    Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method name");
                let res = client
                    .send(
                        method.clone(),
                        &url,
                        headers,
                        body.map(|b| b.to_string().into_bytes()),
                    )
                    .await;
                let what = format!("{method} {url} -> {}: {}", res.status, res.text);
                assert_ne!(res.status.as_u16(), 405, "{what}");
                assert!(
                    !(res.status.as_u16() == 404 && res.body["code"] == "not_found"),
                    "the router found no route: {what}"
                );
                self.assert_conforms(operation, &res, &what);
                probed += 1;
            }
        }
        probed
    }

    /// The response's status, media type and body are documented for `operation`.
    #[track_caller]
    fn assert_conforms(&self, operation: &Value, res: &TestResponse, what: &str) {
        let responses = &operation["responses"];
        let documented = responses
            .get(res.status.as_str())
            .or_else(|| responses.get("default"))
            .unwrap_or_else(|| panic!("undocumented status: {what}"));
        let documented = self.resolve(documented);
        let Some(content) = documented.get("content").and_then(Value::as_object) else {
            assert!(res.text.is_empty(), "documented without a body: {what}");
            return;
        };
        let media = media_type(res).unwrap_or_default();
        let entry = content
            .get(&media)
            .unwrap_or_else(|| panic!("undocumented media type {media:?}: {what}"));
        if media == "application/json" || media.ends_with("+json") {
            let schema = entry.get("schema").cloned().unwrap_or(json!({}));
            if let Err(errors) = self.validate(&schema, &res.body) {
                panic!("body does not fit the documented schema: {errors}\n{what}");
            }
        }
    }

    /// Validates `value` against `schema`, which may `$ref` into the document.
    fn validate(&self, schema: &Value, value: &Value) -> Result<(), String> {
        // The document's components ride along in the root, so that
        // `#/components/schemas/...` resolves as it does in the document.
        let mut root = schema.clone();
        if let Some(object) = root.as_object_mut() {
            object.insert("components".into(), self.doc["components"].clone());
        }
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .map_err(|e| format!("the schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    fn paths(&self) -> impl Iterator<Item = (String, &Value)> {
        self.doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(path, item)| (path.clone(), item))
    }

    /// Follows a local `$ref` (`#/components/...`), once or more.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("non-local $ref {reference}"));
            value = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {reference}"));
        }
        value
    }

    /// An example value for `schema`: its own, its `$ref`'s, or its first
    /// alternative's.
    fn example_of(&self, schema: &Value) -> Option<Value> {
        let schema = self.resolve(schema);
        schema
            .get("example")
            .or_else(|| schema.get("examples").and_then(|e| e.get(0)))
            .cloned()
            .or_else(|| {
                ["oneOf", "anyOf"]
                    .iter()
                    .find_map(|k| schema.get(*k).and_then(|alts| alts.get(0)))
                    .and_then(|first| self.example_of(first))
            })
    }

    fn parameters<'a>(
        &'a self,
        item: &'a Value,
        operation: Option<&'a Value>,
    ) -> impl Iterator<Item = &'a Value> {
        let shared = item["parameters"].as_array().into_iter().flatten();
        let own = operation
            .and_then(|o| o["parameters"].as_array())
            .into_iter()
            .flatten();
        shared.chain(own).map(|p| self.resolve(p))
    }

    fn parameter_example(&self, parameter: &Value) -> Value {
        parameter
            .get("example")
            .cloned()
            .or_else(|| self.example_of(&parameter["schema"]))
            .unwrap_or_else(|| json!("example"))
    }

    /// `path` with its parameters filled in from their examples, plus the
    /// operation's required query parameters.
    fn example_url(&self, path: &str, item: &Value, operation: Option<&Value>) -> String {
        let mut url = path.to_owned();
        let mut query = Vec::new();
        for parameter in self.parameters(item, operation) {
            let name = parameter["name"].as_str().unwrap_or_default();
            let value = match self.parameter_example(parameter) {
                Value::String(s) => s,
                other => other.to_string(),
            };
            match parameter["in"].as_str() {
                Some("path") => url = url.replace(&format!("{{{name}}}"), &value),
                Some("query") if parameter["required"] == true => {
                    query.push(format!("{name}={value}"));
                }
                _ => {}
            }
        }
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }
        url
    }

    fn example_body(&self, operation: &Value) -> Option<Value> {
        let body = self.resolve(operation.get("requestBody")?);
        let json = &body["content"]["application/json"];
        Some(
            json.get("example")
                .cloned()
                .or_else(|| self.example_of(&json["schema"]))
                .unwrap_or_else(|| json!({})),
        )
    }

    /// The structural checks behind [`Self::from_value`].
    #[track_caller]
    fn check_document(&self) {
        let text = self.doc.to_string();
        let spec =
            oas3::from_json(&text).unwrap_or_else(|e| panic!("not an OpenAPI 3.1 document: {e}"));
        let version = spec
            .validate_version()
            .unwrap_or_else(|e| panic!("OpenAPI version: {e}"));
        assert_eq!(version.major, 3, "OpenAPI 3.x");
        assert!(!spec.info.title.is_empty(), "info.title");
        assert!(!spec.info.version.is_empty(), "info.version");

        let mut operation_ids = BTreeSet::new();
        for (path, method, operation) in spec.operations() {
            let id = operation
                .operation_id
                .clone()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(
                operation_ids.insert(id.clone()),
                "duplicate operationId {id}"
            );
            assert!(
                operation.responses.as_ref().is_some_and(|r| !r.is_empty()),
                "{method} {path}: no responses"
            );
        }

        let schemes = &self.doc["components"]["securitySchemes"];
        for (path, item) in self.paths() {
            for method in METHODS {
                let Some(operation) = item.get(method) else {
                    continue;
                };
                for name in path_template_names(&path) {
                    let declared = self.parameters(item, Some(operation)).any(|p| {
                        p["in"] == "path" && p["name"] == name.as_str() && p["required"] == true
                    });
                    assert!(
                        declared,
                        "{method} {path}: path parameter {name} undeclared"
                    );
                }
                for requirement in operation["security"].as_array().into_iter().flatten() {
                    for scheme in requirement
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, _)| k)
                    {
                        assert!(
                            schemes.get(scheme).is_some(),
                            "{method} {path}: undefined security scheme {scheme}"
                        );
                    }
                }
            }
        }

        walk_refs(&self.doc, &mut |reference| {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("non-local $ref {reference}"));
            assert!(
                self.doc.pointer(pointer).is_some(),
                "dangling $ref {reference}"
            );
        });

        for (name, schema) in self.doc["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
                panic!("schema {name} is not valid JSON Schema 2020-12: {e}");
            }
            for example in schema
                .get("example")
                .into_iter()
                .chain(schema["examples"].as_array().into_iter().flatten())
            {
                self.assert_valid(name, example);
            }
        }
    }
}

/// The `{name}`s of a path template.
fn path_template_names(path: &str) -> Vec<String> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

fn walk_refs(value: &Value, visit: &mut impl FnMut(&str)) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => visit(reference),
                    _ => walk_refs(value, visit),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk_refs(v, visit)),
        _ => {}
    }
}

/// The response's media type without parameters (`application/json`).
fn media_type(res: &TestResponse) -> Option<String> {
    res.header("content-type")
        .and_then(|ct| ct.split(';').next().map(|m| m.trim().to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_template_names_are_found() {
        assert_eq!(
            path_template_names("/a/{id}/b/{name}"),
            ["id".to_owned(), "name".to_owned()]
        );
        assert!(path_template_names("/a").is_empty());
    }
}
