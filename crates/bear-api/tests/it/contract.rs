//! The typed wire, checked: every JSON response the tests receive through [`crate::Server::send`]
//! is validated (jsonschema) against the schema the OpenAPI description declares for its route,
//! method and status; and the description has no untyped response body.

use std::sync::OnceLock;

use serde_json::{Value, json};

/// The description, and a matcher from request paths to its path templates.
struct Contract {
    spec: Value,
    templates: matchit::Router<String>,
}

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let spec = serde_json::to_value(bear_api::openapi::spec()).unwrap();
        let mut templates = matchit::Router::new();
        for path in spec["paths"].as_object().unwrap().keys() {
            templates.insert(path.clone(), path.clone()).unwrap();
        }
        Contract { spec, templates }
    })
}

/// The declared JSON schema for a response, if the route is documented.
fn declared(method: &str, path: &str, status: u16) -> Option<Value> {
    let c = contract();
    let path = path.split('?').next().unwrap_or(path);
    let template = c.templates.at(path).ok()?.value;
    let op = &c.spec["paths"][template.as_str()][method.to_ascii_lowercase()];
    if op.is_null() {
        return None;
    }
    let class = format!("{}XX", status / 100);
    let response = [status.to_string(), class, "default".into()]
        .into_iter()
        .map(|k| &op["responses"][k])
        .find(|r| !r.is_null())
        .unwrap_or_else(|| panic!("{method} {template}: no response {status} is described"));
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {template} {status}: answered JSON, described without a JSON body"
    );
    Some(schema.clone())
}

/// Panics unless `body` fits the schema declared for `method path` answering `status`.
pub(crate) fn check(method: &str, path: &str, status: u16, body: &[u8]) {
    let Some(schema) = declared(method, path, status) else {
        return;
    };
    let instance: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{method} {path} {status}: not JSON: {e}"));
    let document = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": contract().spec["components"],
    });
    let validator = jsonschema::validator_for(&document)
        .unwrap_or_else(|e| panic!("{method} {path}: the declared schema is not one: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .take(5)
        .map(|e| format!("at `{}`: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} breaks its schema: {errors:?}\n{instance}"
    );
}

/// Whether a schema says nothing about its object's fields.
fn untyped(schema: &Value) -> bool {
    let bare = |s: &Value| {
        s["type"] == "object" && s.get("properties").is_none() && s.get("$ref").is_none()
    };
    bare(schema) || (schema["type"] == "array" && bare(&schema["items"]))
}

#[test]
fn no_response_body_is_untyped() {
    let spec = &contract().spec;
    let mut found = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, r) in op["responses"].as_object().unwrap() {
                let schema = &r["content"]["application/json"]["schema"];
                if untyped(schema) {
                    found.push(format!("{} {path} {status}", method.to_uppercase()));
                }
            }
        }
    }
    assert_eq!(found, Vec::<String>::new(), "untyped response bodies");
}

#[test]
fn the_checker_refuses_a_body_that_breaks_its_schema() {
    let ok = json!({"status": "ok", "version": "1"}).to_string();
    check("GET", "/health", 200, ok.as_bytes());
    let bad = json!({"status": 3}).to_string();
    let caught = std::panic::catch_unwind(|| check("GET", "/health", 200, bad.as_bytes()));
    assert!(caught.is_err(), "a wrong body must not pass");
    let error = json!({"error": {"kind": "not_found", "message": "m", "request_id": "r"}});
    check("GET", "/api/v1/agents/x", 404, error.to_string().as_bytes());
}
