//! `/openapi.json`: an OpenAPI 3.1 document of the four routes, their bodies and errors,
//! and the probes.

use super::*;

#[tokio::test]
async fn openapi_json_is_openapi_3_1_and_documents_the_four_routes() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let doc = openapi_document(&app).await;

    // Assert
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "OpenAPI 3.1: {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let paths = &doc["paths"];
    let v2 = "/v2/Conversations/{ConversationSid}/Participants";
    let v1 = "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants";
    for (path, method, request_type, success) in [
        (v2.to_owned(), "post", Some("application/json"), "201"),
        (format!("{v2}/{{Sid}}"), "get", None, "200"),
        (
            v1.to_owned(),
            "post",
            Some("application/x-www-form-urlencoded"),
            "201",
        ),
        (format!("{v1}/{{Sid}}"), "get", None, "200"),
    ] {
        let operation = &paths[&path][method];
        assert!(
            operation.is_object(),
            "{method} {path} documented: {}",
            doc["paths"]
        );
        assert!(
            operation["responses"][success].is_object(),
            "{method} {path} answers {success}"
        );
        assert!(
            operation["responses"]["404"].is_object() || operation["responses"]["400"].is_object(),
            "{method} {path} documents its errors"
        );
        if let Some(content_type) = request_type {
            assert!(
                operation["requestBody"]["content"][content_type].is_object(),
                "{method} {path} takes {content_type}"
            );
        }
    }
    for probe in ["/healthz", "/readyz"] {
        assert!(paths[probe]["get"].is_object(), "{probe} documented");
    }
    assert!(doc["components"]["schemas"]["TwilioErrorBody"].is_object());
}
